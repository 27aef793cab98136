# slimops: `make test` and `make bench` set up everything they need on a fresh
# machine (CPU-only or with a GPU), then run.
PYTHON ?= python3
JOBS ?= $(shell nproc)
RESULTS ?= bench/results/latest
DEVICE ?= $(shell $(PYTHON) -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)

export CMAKE_BUILD_PARALLEL_LEVEL := $(JOBS)

.PHONY: all deps build test bench bench-e2e cuda-check clean

all: test

deps:
	$(PYTHON) tools/ensure_deps.py test

# --no-build-isolation: the extension must be compiled against the torch that
# is installed here, not one pip would fetch into an isolated build env.
build: deps
	$(PYTHON) -m pip install -q --no-build-isolation --no-deps -e .

test: build
	$(PYTHON) -m pytest -q tests

bench: build
	mkdir -p $(RESULTS)
	$(PYTHON) -m slimops.cli info
	for bits in 8 4; do \
		$(PYTHON) -m slimops.cli bench gemm --bits $$bits --device $(DEVICE) \
			--json $(RESULTS)/gemm_int$${bits}_$(DEVICE).json --markdown $(RESULTS)/gemm_int$${bits}_$(DEVICE).md || exit 1; \
	done
	for family in lowrank int4-lr sparse24 attention; do \
		$(PYTHON) -m slimops.cli bench $$family --device $(DEVICE) \
			--json $(RESULTS)/$${family}_$(DEVICE).json --markdown $(RESULTS)/$${family}_$(DEVICE).md || exit 1; \
	done

# Whole-model decode of a Llama-3-8B-shaped model (issue 9): minutes on an
# H100; on a CPU, two layers in float32 (the plot needs matplotlib).
bench-e2e: build
	mkdir -p $(RESULTS)
	$(PYTHON) -m slimops.cli bench e2e --device $(DEVICE) --profile \
		--json $(RESULTS)/e2e_$(DEVICE).json --markdown $(RESULTS)/e2e_$(DEVICE).md

# Every CUDA kernel source for sm_80 and sm_90a, no torch or GPU needed.
cuda-check:
	bash tools/check_cuda_compile.sh

clean:
	rm -rf build
