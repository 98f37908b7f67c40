#!/usr/bin/env bash
# make pi-check: lfm_edge on arm64 Debian bookworm (what Raspberry Pi OS is built on), emulated, once as a Pi 4
# (QEMU_CPU=cortex-a72: no dotprod, no fp16 arithmetic) and once as a Pi 5 (cortex-a76).
#
# Why cross-compile + emulate: building llama.cpp under full emulation on a 2-core x86 machine takes hours, while
# llama-cpp-python is a pure-Python package over shared libraries (libllama, libggml*, libmtmd) loaded with ctypes.
# So the libraries are cross-compiled here with the README's Pi flags (tools/pi/build_wheel.sh: GGML_NATIVE=OFF and
# the board's -march, gcc 12 as on the board) and everything else runs in a debootstrap'ed arm64 root under
# qemu-user, installed the README's way (venv + pip, aarch64 wheels from PyPI). QEMU_CPU makes qemu refuse any
# instruction the chosen core lacks: a Pi 5 build run as a Pi 4 must fail, and the check verifies that it does.
#
# Needs root (debootstrap, chroot, binfmt) and: apt-get install debootstrap qemu-user-static binfmt-support
# gcc-aarch64-linux-gnu g++-aarch64-linux-gnu. Writes build/pi/pi-check.json (wall time of every step) and exits
# non-zero when any step fails. PI_CPUS="cortex-a72" runs one CPU model only; PI_WORK (default /var/tmp/lfm-edge-pi)
# holds the arm64 root (about 1 GB with the venv) and the two cross builds; PI_OUT (default build/pi) the logs.
# Two CPU models can run at once from two PI_WORK folders (a copy of the root and the wheels) and two PI_OUT ones.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${PI_OUT:-$repo/build/pi}  # logs, timings, the x86 reference files
# The arm64 root and the cross builds live outside the repository: a tree with mounted /proc inside the project
# would be walked by setuptools (`pip install -e .` lists the project's files) and by editors.
big=${PI_WORK:-/var/tmp/lfm-edge-pi}
root=$big/root
cpus=${PI_CPUS:-cortex-a72 cortex-a76}
timings=$work/host-timings.jsonl
mkdir -p "$work" "$big"
: > "$timings"

host_step() {  # host_step NAME COMMAND...: a timed step on the build machine
  local name=$1; shift
  local start status=0
  start=$(date +%s.%N)
  "$@" > "$work/$name.log" 2>&1 || status=$?
  printf '{"step": "%s", "seconds": %.1f, "status": %d}\n' "$name" "$(awk "BEGIN {print $(date +%s.%N) - $start}")" \
    "$status" >> "$timings"
  if [ "$status" -ne 0 ]; then echo "FAILED $name (see $work/$name.log)" >&2; tail -5 "$work/$name.log" >&2; exit 1; fi
}

require_tools() {
  local missing=""
  for tool in debootstrap qemu-aarch64-static aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ chroot; do
    command -v "$tool" > /dev/null || missing="$missing $tool"
  done
  if [ -n "$missing" ]; then
    echo "missing:$missing. Install: apt-get install debootstrap qemu-user-static binfmt-support" \
      "gcc-aarch64-linux-gnu g++-aarch64-linux-gnu" >&2
    exit 2
  fi
  [ "$(id -u)" = 0 ] || { echo "pi-check needs root (debootstrap, chroot, binfmt_misc)" >&2; exit 2; }
  # qemu-user-static registers aarch64 ELF binaries with binfmt_misc (flag F: works inside a chroot).
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || update-binfmts --enable qemu-aarch64
}

make_root() {  # Debian's own tools: debootstrap (second stage runs under qemu through binfmt)
  [ -f "$root/.lfm-edge-root" ] && return 0
  rm -rf "$root"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,libgomp1 \
    bookworm "$root" ${DEBIAN_MIRROR:-}
  touch "$root/.lfm-edge-root"
}

mount_root() {
  mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
  mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # pip inside the root trusts what the host trusts (a proxy's CA, say): the host's bundle replaces Debian's
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/ssl/certs/ca-certificates.crt"
}

in_root() {  # a command in the root, with the host's environment (proxy, pip and CA settings; QEMU_CPU, which
  # qemu reads again at every exec of an arm64 binary) and the venv first on PATH
  chroot "$root" /usr/bin/env PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

unmount_root() {
  umount "$root/dev" 2>/dev/null || true
  umount "$root/proc" 2>/dev/null || true
}

install_project() {  # the README's Raspberry Pi install, with the cross-built llama-cpp-python wheel
  rm -rf "$root/opt/lfm-edge" && mkdir -p "$root/opt/lfm-edge" "$root/opt/wheels"
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) \
    | tar -xf - -C "$root/opt/lfm-edge"
  cp "$big/wheel-$(board_of "${cpus%% *}")"/*linux_aarch64.whl "$root/opt/wheels/"
  in_root /bin/bash -c "test -x /opt/venv/bin/python || python3 -m venv /opt/venv
    /opt/venv/bin/pip install --quiet /opt/wheels/*.whl
    cd /opt/lfm-edge && /opt/venv/bin/pip install --quiet '.[synthetic,server]' pytest hypothesis openai"
}

use_wheel() {  # use_wheel pi4|pi5: the board's build of the libraries into the root's venv
  local wheel
  wheel=$(ls "$big/wheel-$1"/*linux_aarch64.whl)
  mkdir -p "$root/opt/wheels/$1" && cp "$wheel" "$root/opt/wheels/$1/"
  in_root /opt/venv/bin/pip install --quiet --force-reinstall --no-deps "/opt/wheels/$1/$(basename "$wheel")"
}

host_reference() {  # a GGUF written on x86 and its greedy text here, for the arm side to reproduce
  local ref=$root/opt/host-gguf
  rm -rf "$ref" && mkdir -p "$ref"
  "$repo/.venv/bin/lfm-edge" synthetic "$work/host-tiny" --size tiny --force
  "$repo/.venv/bin/lfm-edge" convert "$work/host-tiny" --outdir "$work/host-f16" --outtype f16 --force
  cp "$work/host-f16/host-tiny-f16.gguf" "$ref/tiny-f16.gguf"
  cp "$work/host-f16/mmproj-host-tiny-f16.gguf" "$ref/mmproj-tiny-f16.gguf"
  "$repo/.venv/bin/lfm-edge" -q run "$ref/tiny-f16.gguf" "Describe this image." \
    --image "$repo/tests/images/photo_336x240.png" --json --temperature 0 --max-tokens 12 --threads 2 \
    --n-ctx 2048 > "$ref/expected.json"
}

qemu_enforces_the_cpu() {  # a dotprod instruction: runs as a Cortex-A76, dies with SIGILL as a Cortex-A72
  aarch64-linux-gnu-gcc -O2 -march=armv8.2-a+dotprod -static "$repo/tools/pi/dotprod.c" -o "$big/dotprod"
  QEMU_CPU=cortex-a76 "$big/dotprod"
  if QEMU_CPU=cortex-a72 "$big/dotprod"; then echo "qemu ran dotprod as a Cortex-A72" >&2; return 1; fi
}

wrong_build_fails() {  # the Pi 5 build run as a Pi 4 must die on an instruction the A72 lacks (dotprod, fp16)
  local status=0
  QEMU_CPU=cortex-a72 in_root /opt/venv/bin/lfm-edge run /opt/host-gguf/tiny-f16.gguf "Hi" \
    --max-tokens 4 --temperature 0 || status=$?
  echo "status $status (non-zero expected)"
  [ "$status" -ne 0 ]
}

require_tools
trap unmount_root EXIT
host_step qemu-enforces-cpu qemu_enforces_the_cpu
host_step debootstrap make_root
build_wheel() {  # the wheel is kept between runs: delete $big/wheel-BOARD to rebuild
  ls "$big/wheel-$1"/*linux_aarch64.whl > /dev/null 2>&1 || "$repo/tools/pi/build_wheel.sh" "$1" "$big"
}
board_of() { if [ "$1" = cortex-a76 ]; then echo pi5; else echo pi4; fi; }
for cpu in $cpus; do host_step "build-wheel-$(board_of "$cpu")" build_wheel "$(board_of "$cpu")"; done
mount_root
host_step install install_project
host_step host-reference host_reference
status=0
for cpu in $cpus; do
  board=$(board_of "$cpu")
  host_step "use-wheel-$board" use_wheel "$board"
  echo "== $cpu ($board build)"
  QEMU_CPU=$cpu in_root /bin/bash /opt/lfm-edge/tools/pi/in_root.sh "/opt/pi-check/$cpu" /opt/host-gguf \
    || status=1
  cp -r "$root/opt/pi-check/$cpu" "$work/"
done
if [[ " $cpus " == *" cortex-a76 "* ]]; then
  host_step pi5-build-on-a72-fails wrong_build_fails
fi
"$repo/.venv/bin/python" "$repo/tools/pi/summary.py" "$work" $cpus > "$work/pi-check.json"
cat "$work/pi-check.json"
exit $status
