#!/usr/bin/env bash
# Fails when a file includes from a part it must not (docs/ARCHITECTURE.md, "Parts"): the parts
# form layers, and an include may only point down or sideways within its own part.
#   gguf/     nothing of ours
#   kernels/  gguf/
#   model/    gguf/, kernels/
#   bench/    gguf/, kernels/, model/
#   server/   everything above
# Usage: scripts/check-includes.sh [ROOT]   (default: the repository)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

declare -A allowed=(
  [gguf]="gguf"
  [kernels]="kernels gguf"
  [model]="model kernels gguf"
  [bench]="bench model kernels gguf"
  [server]="server bench model kernels gguf"
)
ours="gguf kernels model bench server tests"

status=0
for part in "${!allowed[@]}"; do
  [ -d "$part" ] || continue
  while IFS= read -r -d '' file; do
    while IFS=: read -r line target; do
      top="${target%%/*}"
      [[ " $ours " == *" $top "* ]] || continue  # a system or third-party header
      if [[ " ${allowed[$part]} " != *" $top "* ]]; then
        echo "$file:$line: $part/ must not include \"$target\" (it may include: ${allowed[$part]})"
        status=1
      fi
    done < <(grep -noE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[^"]+"' "$file" |
             sed -E 's/^([0-9]+):.*"([^"]+)"/\1:\2/')
  done < <(find "$part" -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.c' -o -name '*.in' \
             -o -name '*.comp' -o -name '*.cl' \) -print0)
done
[ "$status" -eq 0 ] && echo "check-includes: every include points down the layers"
exit "$status"
