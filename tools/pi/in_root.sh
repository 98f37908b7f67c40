#!/usr/bin/env bash
# Runs inside the emulated arm64 root (tools/pi/pi_check.sh starts it with QEMU_CPU set): the README's commands on
# a tiny synthetic model, each timed into $OUT/timings.jsonl, then a subset of the test suite.
#   in_root.sh OUT HOST_GGUF_DIR   (HOST_GGUF_DIR: files converted on the x86 host, with expected.json beside them)
set -uo pipefail
out=${1:?usage: in_root.sh OUT HOST_GGUF_DIR}
host=${2:?usage: in_root.sh OUT HOST_GGUF_DIR}
cd /opt/lfm-edge
export PATH=/opt/venv/bin:$PATH HOME=/root
mkdir -p "$out" && : > "$out/timings.jsonl"
failed=0

step() {  # step NAME COMMAND...: runs it, records its wall time and status; a failure fails the check
  local name=$1; shift
  local start end status
  start=$(date +%s.%N)
  "$@" > "$out/$name.log" 2>&1
  status=$?
  end=$(date +%s.%N)
  printf '{"step": "%s", "seconds": %.1f, "status": %d}\n' "$name" "$(awk "BEGIN {print $end - $start}")" "$status" \
    >> "$out/timings.jsonl"
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "FAILED $name (status $status):" >&2
    tail -5 "$out/$name.log" >&2
  fi
  return 0
}

serve_one_request() {  # serve + one chat request with an image, then stop the server
  lfm-edge serve "$1" --port 18080 > "$out/serve-server.log" 2>&1 &
  local pid=$!
  python3 tools/pi/request.py http://127.0.0.1:18080 tests/images/photo_336x240.png
  local status=$?
  kill "$pid" && wait "$pid"
  return $status
}

same_greedy_text() {  # the x86 host's GGUF gives the host's greedy text here too
  lfm-edge -q run "$host/tiny-f16.gguf" "Describe this image." --image tests/images/photo_336x240.png \
    --json --temperature 0 --max-tokens 12 --threads 2 --n-ctx 2048 > "$out/greedy.json" || return 1
  python3 - "$host/expected.json" "$out/greedy.json" <<'PY'
import json, sys
expected, got = (json.load(open(path))["text"] for path in sys.argv[1:])
print(f"x86: {expected!r}\narm: {got!r}")
sys.exit(0 if expected == got else 1)
PY
}

model=/tmp/pi-check/tiny
q=/tmp/pi-check/q
image=tests/images/photo_1024x768.jpg
rm -rf /tmp/pi-check && mkdir -p /tmp/pi-check
step doctor lfm-edge doctor
step synthetic lfm-edge synthetic "$model" --size tiny --force
step convert lfm-edge convert "$model" --outdir /tmp/pi-check/f16 --outtype f16 --force
step quantize lfm-edge quantize "$model" --types Q4_0 --mmproj-types Q8_0 --outdir "$q" --no-report --force
text=$(ls "$q"/*-Q4_0.gguf | grep -v mmproj)
step run lfm-edge run "$text" "Describe this image." --image "$image" --max-tokens 16 --seed 0
step run-low-memory lfm-edge run "$text" - --image "$image" --max-tokens 16 --seed 0 --low-memory \
  <<< "Describe this image."
step tools lfm-edge tools "$text" "What is the weather in Paris?" --tools tools/pi/tools.json --max-tokens 16
step detect lfm-edge detect "$text" "$image" "a red box" --max-tokens 24 --json
step serve serve_one_request "$text"
step same-gguf-as-x86 same_greedy_text
# The tests that concern arm64 and the profile (threads from /proc and /sys, image tokens, boxes, the low-memory
# profile's mapped weights and logits, the memory check); the CLI and generation are the steps above. Emulated, the
# whole suite takes hours on 2 cores.
step tests python3 -m pytest -q -p no:cacheprovider tests/test_cpu_arm.py tests/test_bench_cpu.py \
  tests/test_image_tokens.py tests/test_parse_boxes.py tests/test_profiles.py
exit $failed
