# lfm_edge — set-up, tests, checks and the reference goldens.
# `make demo` and `make test` are all a fresh machine needs (see README.md).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REF_VENV := .venv-ref
REF_PY := $(REF_VENV)/bin/python
LLAMA_CPP_PYTHON := 0.3.36
# The vendored llama.cpp tree (convert_hf_to_gguf.py, gguf-py) of the pinned llama-cpp-python sdist.
LLAMA_SRC := build/llama_cpp_python-$(LLAMA_CPP_PYTHON)
DEMO_DIR := build/demo

.PHONY: venv venv-gpu demo test test-slow check lint format reference goldens clean bench-convert quantize bench

venv: $(VENV)/.installed

# Builds llama-cpp-python from source (about 4 minutes on 2 cores) with the rest of the pinned dependencies.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

DEMO_IMAGE := tests/images/photo_1024x768.jpg

# The main job end to end on an embedded default: a tiny synthetic checkpoint (random weights, official layout) ->
# GGUF pair -> an image described through the HF-exact image path. The words are random: the weights are.
# GPU builds of llama-cpp-python into the same venv: make venv-gpu BACKEND=cuda|metal|vulkan (see README).
CMAKE_ARGS_cuda := -DGGML_CUDA=on
CMAKE_ARGS_metal := -DGGML_METAL=on
CMAKE_ARGS_vulkan := -DGGML_VULKAN=on $(if $(VULKAN_INCLUDE),-DVulkan_INCLUDE_DIR=$(VULKAN_INCLUDE))
venv-gpu: venv
	@test -n "$(CMAKE_ARGS_$(BACKEND))" || (echo "BACKEND must be cuda, metal or vulkan" >&2; exit 2)
	CMAKE_ARGS="$(CMAKE_ARGS_$(BACKEND))" $(PY) -m pip install --force-reinstall --no-deps --no-cache-dir \
		--no-binary llama-cpp-python llama-cpp-python==$(LLAMA_CPP_PYTHON)

demo: venv
	@echo "==> 1/4 writing a tiny synthetic LFM2.5-VL checkpoint"
	$(VENV)/bin/lfm-edge synthetic $(DEMO_DIR)/tiny-lfm2.5-vl --size tiny --layout official-2.5 --force
	@echo "==> 2/4 converting it to GGUF (text model + mmproj)"
	$(VENV)/bin/lfm-edge convert $(DEMO_DIR)/tiny-lfm2.5-vl --outdir $(DEMO_DIR) --outtype f16 --force
	@echo "==> 3/4 what this llama.cpp build can do"
	$(VENV)/bin/lfm-edge doctor
	@echo "==> 4/4 describing $(DEMO_IMAGE) (timings on the last line)"
	$(VENV)/bin/lfm-edge run $(DEMO_DIR)/tiny-lfm2.5-vl-f16.gguf "Describe this image." --image $(DEMO_IMAGE) \
		--max-tokens 24 --seed 0

# A checkpoint (folder or HF repo id) -> the official GGUF repo's set of files in $(QUANT_DIR), with manifest.json,
# README.md and report.md (KL/top-1/perplexity against F16), plus the vision encoder as ONNX fp32 + int8 and its
# report rows (ONNX=0 skips them). make quantize MODEL=path-or-repo [TYPES=Q4_0,Q8_0]
TYPES ?= Q4_0,Q4_K_M,Q5_K_M,Q6_K,Q8_0
MMPROJ_TYPES ?= Q8_0,F16,BF16
QUANT_DIR ?= build/quantized
quantize: venv
	@test -n "$(MODEL)" || (echo "usage: make quantize MODEL=path-or-repo [TYPES=...] [QUANT_DIR=...]" >&2; exit 2)
	$(VENV)/bin/lfm-edge quantize "$(MODEL)" --types "$(TYPES)" --mmproj-types "$(MMPROJ_TYPES)" \
		--outdir "$(QUANT_DIR)" $(if $(FORCE),--force) $(if $(filter 0,$(ONNX)),,--onnx)

test: venv browser
	$(PY) -m pytest

# The browser tests (tests/test_ui_*.py) need Debian's chromium and its driver; installed here only when missing
# (apt-get, as root: CI and these machines run as root; elsewhere it says what to install).
.PHONY: browser
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "make browser: install chromium and chromium-driver (Debian packages) as root" >&2; exit 1; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver

test-slow: venv
	$(PY) -m pytest -m slow

check: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The reference-only venv: transformers 5.23 + torch 2.14.1 + torchvision 0.29.1 (from the wheels on this disk) and
# llama.cpp's own converter. Never used by the package or by CI; it regenerates the committed goldens.
reference: $(REF_VENV)/.installed $(LLAMA_SRC)/.unpacked

$(REF_VENV)/.installed: tests/reference/requirements.txt
	test -x $(REF_PY) || $(PYTHON) -m venv $(REF_VENV)
	$(REF_PY) -m pip install --quiet -r tests/reference/requirements.txt
	touch $@

$(LLAMA_SRC)/.unpacked:
	mkdir -p build
	$(PYTHON) -m pip download --quiet --no-deps --no-binary :all: --dest build llama-cpp-python==$(LLAMA_CPP_PYTHON)
	tar -xzf build/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C build
	touch $@

# Regenerates every committed golden, byte for byte (run from the repo root; scripts say what each golden is).
goldens: reference
	$(REF_PY) -m tests.reference.make_images
	$(REF_PY) -m tests.reference.image_goldens
	$(REF_PY) -m tests.reference.layout_goldens
	$(REF_PY) -m tests.reference.chat_goldens
	$(REF_PY) -m tests.reference.load_manifest
	$(REF_PY) -m tests.reference.model_goldens
	$(REF_PY) -m tests.reference.llamacpp_goldens
	$(REF_PY) -m tests.reference.family_goldens
	$(REF_PY) -m tests.reference.transformers_saved
	$(REF_PY) -m tests.reference.bf16_features
	$(REF_PY) -m tests.reference.onnx_goldens

# transformers' bf16 image features of the tiny checkpoint (tests/goldens/model/bf16), for the BF16 mmproj test.
.PHONY: goldens-bf16
goldens-bf16: reference
	$(REF_PY) -m tests.reference.bf16_features

clean:
	rm -rf build $(VENV) $(REF_VENV) .pytest_cache .mypy_cache .ruff_cache

# Converter wall time and peak RSS on the `full` synthetic checkpoint, beside llama.cpp's converter (reference venv).
bench-convert: venv
	$(PY) -m benchmarks.bench_convert --outtype f16

# Image-preprocessing speed beside Pillow's BILINEAR doing the same resizes, one core each (decode excluded).
.PHONY: bench-preprocess
bench-preprocess: venv
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m benchmarks.bench_preprocess --out build/bench/preprocess.json

# 100,000 generated inputs through each output parser (seeded; plus a coverage-guided atheris pass when atheris is
# installed): no exception but the documented ParseError. Counts and time in build/bench/fuzz.json; exit 1 on failure.
.PHONY: fuzz-parsers
fuzz-parsers: venv
	$(PY) -m benchmarks.fuzz_parsers --out build/bench/fuzz.json

# Follow-up TTFT on the same image vs the first turn (full-size synthetic model, F16).
# The image path alone, one interleaved run (build/bench/image.json, its rows printed as markdown): encode ms per crop
# for each mmproj type; TTFT of 512x385 and 1920x1080 + question for ours (chosen mmproj; mtmd, and ONNX when a
# vision-*.onnx is in the folder), llama-mtmd-cli (Q8_0 mmproj) and transformers bf16/f32 (reference venv); the
# cache-hit TTFT in a second process; image prefill by n_batch. The full-size synthetic files are made when missing.
# make bench-image [VISION_DIR=folder with Q4_0 + mmproj types] [VISION_CHECKPOINT=HF folder] [ROUNDS=3] [THREADS=N]
VISION_DIR ?= build/bench/quantized
VISION_CHECKPOINT ?= build/bench/full-official-2.5
.PHONY: bench-image
bench-image: venv
	test -n "$$(ls $(VISION_DIR)/*-Q4_0.gguf 2>/dev/null)" || $(PY) -c 'from benchmarks.bench_all import full_plan; full_plan(1, 1)'
	$(PY) -m benchmarks.bench_image $(VISION_DIR) --rounds $(ROUNDS) $(if $(THREADS),--threads $(THREADS)) \
		$$(test -f $(VISION_CHECKPOINT)/config.json && echo --transformers $(VISION_CHECKPOINT))

.PHONY: bench-followup
bench-followup: venv
	$(PY) -m benchmarks.bench_followup

# About 1 MB hostile inputs (deep nesting, quote runs, CVE-2025-48887 regex-DoS shapes, huge JSON arrays) through each
# output parser: seconds per input and an under_1s flag in build/bench/parse.json; exit 1 if a call took >= 1 s.
.PHONY: bench-parse
bench-parse: venv
	$(PY) -m benchmarks.bench_parse --out build/bench/parse.json

# `make bench`: ours beside raw llama.cpp (llama-bench, llama-mtmd-cli: `make bench-reference` builds them) and
# transformers on CPU (the reference venv, when it exists) in one run, interleaved per round, on the full-size
# synthetic model as Q4_0 text + Q8_0 mmproj and as F16 (converted/quantized here when missing); peak RSS describing a
# 1920x1080 image at n_ctx 4096. Writes bench/results.json and bench/results.md. make bench [ROUNDS=3] [THREADS=N]
# QUICK=1: the tiny synthetic model, pp64/tg16, one round, references only where built (CI; build/bench/quick/).
# ONLY=video,parallel: measure only those sections again (vision, parallel, onnx_vision, video) into results.json.
ROUNDS ?= 3
bench: venv
	$(PY) -m benchmarks.bench_all $(if $(QUICK),--quick,--rounds $(ROUNDS)) $(if $(THREADS),--threads $(THREADS)) \
		$(if $(ONLY),--only $(ONLY))

# Aggregate decode tok/s with 1, 2, 4 concurrent clients: `lfm-edge serve --parallel 4` beside llama-server -np 4
# (when `make bench-reference` built it), interleaved per round (build/bench/parallel.json). `make bench` runs it too
# (its "Parallel clients" section). About 2 minutes on the full-size F16 model with 2 quiet cores.
PARALLEL_MODEL ?= build/bench/convert-out/ours/full-official-2.5-f16.gguf
PARALLEL_ROUNDS ?= 3
.PHONY: bench-parallel
bench-parallel: venv
	test -f $(PARALLEL_MODEL) || $(MAKE) $(if $(findstring demo,$(PARALLEL_MODEL)),demo,bench-convert)
	$(PY) -m benchmarks.bench_parallel $(PARALLEL_MODEL) --rounds $(PARALLEL_ROUNDS) $(if $(THREADS),--threads $(THREADS))

# Live and file captioning (lfm-edge watch) on a generated 640x480 30 fps clip, full-size synthetic Q4_0 text + Q8_0
# mmproj + ONNX int8 vision (written beside it when missing): captions/s, lag p50/p95 and CPU share live, video seconds
# per wall second at --every 2 (ONNX and mmproj encoders), CPU share of a static scene, and what each speed choice
# gains per caption (build/bench/video.json). QUICK=1: the tiny model and a 10 s clip (a smoke test, not a measurement).
.PHONY: bench-video
bench-video: venv
	$(PY) -m benchmarks.bench_video $(if $(QUICK),--quick) $(if $(THREADS),--threads $(THREADS))

# Vision encode ms per crop (512x512, 256x256): mmproj Q8_0/F16/BF16 through llama.cpp beside ONNX Runtime fp32/int8,
# then TTFT 512x385 + question, mtmd vs ONNX int8; interleaved rounds, full synthetic checkpoint (build/bench/vision.md).
# ONNX_DIR=folder: a `lfm-edge quantize ... --onnx` folder's files instead (its Q4_0 text); RSS=1: also the peak RSS
# of each backend describing a 1920x1080 photo. `make bench` runs it too (its rows in bench/results.md).
.PHONY: bench-vision
bench-vision: venv
	$(PY) -m benchmarks.bench_vision --rounds $(ROUNDS) $(if $(THREADS),--threads $(THREADS)) \
		$(if $(ONNX_DIR),--folder $(ONNX_DIR)) $(if $(RSS),--rss)

# After `make venv-gpu BACKEND=...` and `make demo`: CPU and GPU give the same greedy tokens (build/bench/gpu_check.json).
.PHONY: gpu-check
gpu-check: venv
	$(PY) -m benchmarks.gpu_check

# llama-bench and llama-mtmd-cli from the vendored llama.cpp (same commit, default flags: native CPU features), then
# pp512 / tg128 / image-slice encode beside ours, same run (build/bench/reference.json). Needs `make bench-convert`.
REF_BUILD := build/llama-ref
.PHONY: bench-reference
bench-reference: venv $(LLAMA_SRC)/.unpacked
	mkdir -p $(REF_BUILD)
	cmake -S $(LLAMA_SRC)/vendor/llama.cpp -B $(REF_BUILD) -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
		-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON > /dev/null
	cmake --build $(REF_BUILD) --target llama-bench llama-mtmd-cli llama-server -j 2 > /dev/null
	test -f build/bench/convert-out/ours/full-official-2.5-f16.gguf || $(MAKE) bench-convert
	$(PY) -m benchmarks.bench_reference

# A bounded soak of `lfm-edge serve` on the demo's tiny model: CLIENTS parallel clients for SOAK_SECONDS seconds, good and
# hostile requests mixed, every status checked (build/bench/soak.json; exit 1 on any unexpected answer).
CLIENTS ?= 8
SOAK_SECONDS ?= 30
.PHONY: soak
soak: venv
	test -f $(DEMO_DIR)/tiny-lfm2.5-vl-f16.gguf || $(MAKE) demo
	$(PY) -m benchmarks.soak_server $(DEMO_DIR)/tiny-lfm2.5-vl-f16.gguf --clients $(CLIENTS) --seconds $(SOAK_SECONDS)

# lfm_edge on arm64 Debian bookworm under qemu-user, as a Pi 4 (cortex-a72) and a Pi 5 (cortex-a76): llama.cpp
# cross-compiled with the README's Pi flags, the rest installed the README's way in a debootstrap root; convert,
# quantize, run, tools, detect, serve, a GGUF written on x86, a test subset. Needs root and the apt packages of
# tools/pi/pi_check.sh. Timings in build/pi/pi-check.json. PI_CPUS=cortex-a72 runs one CPU model.
.PHONY: pi-check
pi-check: venv
	nice tools/pi/pi_check.sh

# The low-memory profile against the default: peak RSS, TTFT and decode speed describing a 1920x1080 image at n_ctx
# 4096 and a 512x512 one at n_ctx 2048 (goals 450 / 350 MB), each of the profile's choices alone, and its effect on
# an image prompt's logits; full-size synthetic model, Q4_0 text + Q8_0 mmproj. Writes bench/pi_profile.json and
# bench/pi_fidelity.json. PI_BENCH_FLAGS=--no-extra-buffers where llama.cpp's AMX/repack path crashes.
PI_FULL := build/pi-full
.PHONY: bench-pi-profile
bench-pi-profile: venv
	test -f $(PI_FULL)/q/LFM2.5-VL-450M-Q4_0.gguf || ($(VENV)/bin/lfm-edge synthetic $(PI_FULL)/LFM2.5-VL-450M \
		--size full --force && $(VENV)/bin/lfm-edge quantize $(PI_FULL)/LFM2.5-VL-450M --types Q4_0 \
		--mmproj-types Q8_0 --no-report --outdir $(PI_FULL)/q --force)
	$(PY) -m benchmarks.bench_pi_profile $(PI_FULL)/q/LFM2.5-VL-450M-Q4_0.gguf \
		$(PI_FULL)/q/mmproj-LFM2.5-VL-450M-Q8_0.gguf $(PI_BENCH_FLAGS)
	$(PY) -m benchmarks.bench_pi_fidelity $(PI_FULL)/q/LFM2.5-VL-450M-Q4_0.gguf \
		$(PI_FULL)/q/mmproj-LFM2.5-VL-450M-Q8_0.gguf $(PI_BENCH_FLAGS)
