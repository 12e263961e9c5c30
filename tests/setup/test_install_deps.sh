#!/usr/bin/env bash
# The set-up itself: scripts/install-deps.sh run from the repository root with PYTHON set to a
# fresh virtual environment's python must leave every Python module the tests use importable
# there. (Its check once ran from the root, where the C++ folder gguf/ imports as a namespace
# package, so the gguf package was never installed on a fresh machine.)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
(cd "$root" && PYTHON="$venv/bin/python" scripts/install-deps.sh)
read -r -a modules < <(sed -n 's/^python_modules=(\([^)]*\)).*/\1/p' "$root/scripts/install-deps.sh")
[ "${#modules[@]}" -gt 0 ] || { echo "no python_modules list in install-deps.sh"; exit 1; }
cd "$venv"
for m in "${modules[@]}"; do
  "$venv/bin/python" -c "import $m" || { echo "FAIL: '$m' is not importable after install-deps.sh"; exit 1; }
done
echo "install-deps.sh left ${modules[*]} importable in a fresh venv"
