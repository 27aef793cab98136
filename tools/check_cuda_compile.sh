#!/usr/bin/env bash
# Compiles every CUDA kernel source with nvcc for sm_80 and sm_90a, without
# torch and without a GPU, so a kernel that does not compile never lands.
# Kernels are torch-free (design.md), which is what makes this possible.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-nvcc}
command -v "$NVCC" >/dev/null || { echo "check_cuda_compile: nvcc not found (set NVCC)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mapfile -t sources < <(find csrc/cuda -name '*.cu' | sort)
[ ${#sources[@]} -gt 0 ] || { echo "check_cuda_compile: no .cu sources found" >&2; exit 1; }
jobs=${CHECK_JOBS:-$(nproc)}
printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -I{} sh -c '
  "$0" -std=c++17 -O3 -Icsrc --expt-relaxed-constexpr -Werror all-warnings \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a \
    -c "{}" -o "$1/$(echo {} | tr / _).o" && echo "ok  {}"' "$NVCC" "$out"
echo "check_cuda_compile: ${#sources[@]} CUDA source(s) compiled for sm_80 and sm_90a"

# The SASS scan (tools/sass_undefined_ur.py): ptxas 13.0 has emitted copies
# through uniform registers nothing wrote, which only shows as an illegal
# instruction on a GPU. cuobjdump and nvdisasm come from pip wheels when
# the CUDA install lacks them; without either (no network) the scan is
# skipped with a warning, the compile check stands.
tools="$out/sass_tools/nvidia/cu13/bin"
if ! command -v cuobjdump >/dev/null || ! command -v nvdisasm >/dev/null; then
  if python3 -m pip install -q --disable-pip-version-check --target "$out/sass_tools" \
      "nvidia-cuda-cuobjdump>=13,<14" "nvidia-cuda-nvdisasm>=13,<14" >/dev/null 2>&1; then
    export PATH="$tools:$PATH"
  else
    echo "check_cuda_compile: WARNING: no cuobjdump/nvdisasm (pip install failed), SASS scan skipped" >&2
    exit 0
  fi
fi
for obj in "$out"/*.o; do cuobjdump -sass "$obj" > "${obj%.o}.sass"; done
python3 tools/sass_undefined_ur.py "$out"/*.sass
