# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run run-class test test-fast e2e-deps default-model bench bench-serve clean-cache

# Runtime environment: re-installed whenever requirements.txt changes.
$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Test extras on top of the runtime pins.
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## Open the app on the built-in dataset (generated on first open, ~30 s), on this machine only (localhost).
run: $(VENV)/.runtime
	$(PY) -m streamlit run streamlit_app.py --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

## Serve a class on the local network: AUDIOWB_PASSWORD=... make run-class (everyone types that password).
run-class: $(VENV)/.runtime
	@test -n "$$AUDIOWB_PASSWORD" || { echo "Set the class password first: AUDIOWB_PASSWORD=... make run-class"; exit 1; }
	$(PY) -m streamlit run streamlit_app.py --server.port $(PORT) --server.address 0.0.0.0 --server.headless true \
		--browser.gatherUsageStats false

## Install what the browser tests and the PostgreSQL sweep test need (Debian chromium, postgresql) when missing.
e2e-deps:
	@bash .ci/ensure-chromium
	@bash .ci/ensure-postgres

## Every test: lib unit tests, page tests (AppTest) and browser end-to-end tests.
test: $(VENV)/.dev e2e-deps
	$(PY) -m pytest

## Unit and page tests only (no browser).
test-fast: $(VENV)/.dev
	$(PY) -m pytest -m "not e2e"

## Retrain the default model shipped in models/default (built-in dataset).
# The shipped model: five kws_resnet trained side by side (own shuffles) on the default built-in eSpeak set plus
# 100 Piper and 250 Kokoro clips per word (neural voices; synthesizing them takes ~16 min once, then cached),
# with vocal-tract-length and tempo warping, background noise and room reverb; see docs/benchmarks.md. It was trained
# with that augmentation on waveforms and contiguous tensors (--augment-domain waveform --memory-format contiguous).
# Since training keeps waveforms as exact int16 (scale 32768, was 32767) a retrain differs from it in its last bits.
default-model: $(VENV)/.runtime
	$(PY) -m lib.engine.train --dataset builtin --piper-clips-per-word 100 --kokoro-clips-per-word 250 \
		--model kws_resnet_x5 --epochs 20 \
		--freq-warp 0.15 --time-stretch 0.2 --noise-probability 0.5 --reverb-probability 0.3 \
		--augment-domain waveform --memory-format contiguous --run-id default --out models --force

## Benchmarks (data, not tests): writes docs/benchmarks.md.
bench: $(VENV)/.runtime
	$(PY) bench/engine.py --out docs/benchmarks.md

## Export and serving benchmarks (ONNX/TorchScript/int8 vs lib.serving.infer; HTTP load on 127.0.0.1): docs/benchmarks.md.
bench-serve: $(VENV)/.runtime
	$(PY) bench/export.py
	$(PY) bench/serve_load.py bench/out/export-default/onnx models/default

clean-cache:
	rm -rf data/cache
