#!/usr/bin/env bash
# Cross-compiles the llama-cpp-python wheel for one Raspberry Pi board on an x86-64 Debian host:
#   tools/pi/build_wheel.sh pi4|pi5 OUTDIR
# The flags are the README's "Raspberry Pi" ones (GGML_NATIVE=OFF + the board's -march); only the compiler differs
# (aarch64-linux-gnu-gcc 12, the version Raspberry Pi OS bookworm ships). The wheel is then tagged linux_aarch64.
set -euo pipefail
board=${1:?usage: build_wheel.sh pi4|pi5 OUTDIR}
outdir=${2:?usage: build_wheel.sh pi4|pi5 OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
version=${LLAMA_CPP_PYTHON:-0.3.36}
case $board in
  pi4) arch=armv8-a ;;                   # Cortex-A72: no dotprod, no fp16 arithmetic
  pi5) arch=armv8.2-a+dotprod+fp16 ;;    # Cortex-A76
  *) echo "unknown board $board (pi4 or pi5)" >&2; exit 2 ;;
esac
work=$outdir/src-$board
mkdir -p "$outdir"
host=$outdir/host-venv  # pip and wheel for the build machine's side
test -x "$host/bin/wheel" || { python3 -m venv "$host" && "$host/bin/pip" install --quiet wheel; }
sdist=$outdir/llama_cpp_python-$version.tar.gz
test -f "$sdist" || "$host/bin/pip" download --quiet --no-deps --no-binary :all: --dest "$outdir" "llama-cpp-python==$version"
# A fresh copy per board: llama-cpp-python's CMakeLists also installs the libraries into its own source tree.
rm -rf "$work" && mkdir -p "$work" && tar -xzf "$sdist" -C "$work" --strip-components 1
export CMAKE_ARGS="-DCMAKE_TOOLCHAIN_FILE=$here/aarch64-linux-gnu.cmake -DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=$arch"
export CMAKE_BUILD_PARALLEL_LEVEL=${JOBS:-2}
"$host/bin/pip" wheel --quiet --no-deps --wheel-dir "$outdir/wheel-$board" "$work"
wheel=$(ls "$outdir/wheel-$board"/llama_cpp_python-"$version"-*linux_x86_64.whl)
"$host/bin/wheel" tags --remove --platform-tag linux_aarch64 "$wheel" > /dev/null
file -bL "$work/llama_cpp/lib/libggml-cpu.so" | grep -q aarch64 || { echo "libggml-cpu.so is not aarch64" >&2; exit 1; }
ls "$outdir/wheel-$board"/*linux_aarch64.whl
