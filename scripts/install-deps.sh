#!/usr/bin/env bash
# Installs what ember needs to build and test: Debian packages (SPEC.md's list less OpenBLAS,
# which docs/ARCHITECTURE.md says why; and the test tools) and the Python packages the tests
# use. Idempotent and quick when everything is already there.
set -euo pipefail

debian_packages=(
  build-essential cmake ninja-build pkg-config clang
  libvulkan-dev glslang-tools ocl-icd-opencl-dev opencl-headers
  libcurl4-openssl-dev nlohmann-json3-dev libpcre2-dev
  libgtest-dev mesa-vulkan-drivers vulkan-validationlayers pocl-opencl-icd curl unzip
  g++-aarch64-linux-gnu qemu-user  # scripts/check-arm.sh: NEON kernels built and tested under qemu
  chromium chromium-driver  # tests/server/test_ui.py drives the chat page headless
  ccache  # scripts/ccache-launch: quick rebuilds, and the container build reuses make build's objects
  podman debootstrap nginx-light  # tests/deploy: the image build, three replicas behind nginx
)
# `kubectl kustomize` renders deploy/kubernetes (tests/deploy/test_manifests.py); Debian's own
# kubectl (kubernetes-client) only where none is installed.
command -v kubectl >/dev/null || debian_packages+=(kubernetes-client)
python_modules=(gguf numpy pytest transformers jinja2 openai requests jsonschema pydantic ollama anthropic selenium langchain_ollama kubernetes_validate yaml)   # import names
python_packages=(gguf numpy pytest transformers jinja2 openai requests jsonschema pydantic ollama anthropic selenium langchain-ollama kubernetes-validate pyyaml)  # pip names, same order

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
# Check imports from an empty directory: run from the repository root, the C++ folder gguf/ would
# import as a namespace package and hide a missing `gguf` Python package.
probe_dir="$(mktemp -d)"
trap 'rmdir "$probe_dir"' EXIT
need_pip=()
for i in "${!python_modules[@]}"; do
  (cd "$probe_dir" && "$python" -c "import ${python_modules[$i]}" 2>/dev/null) ||
    need_pip+=("${python_packages[$i]}")
done
if ((${#need_pip[@]})); then
  echo "install-deps: installing Python packages: ${need_pip[*]}"
  "$python" -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi
