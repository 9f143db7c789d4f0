# Tripwire: `make demo` and `make test` each work from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1

.PHONY: venv demo review test test-fast check format bench services clean

venv: $(STAMP)

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tripwire demo --out demo-output

# The review app on the demo's store: prints a one-off reviewer token to sign in with.
review: $(STAMP)
	@test -f demo-output/tripwire.db || { echo "run \`make demo\` first"; exit 1; }
	@echo "sign in at http://127.0.0.1:8000 with this reviewer token:"
	@TRIPWIRE_HOME=demo-output TRIPWIRE_POLICY=triggers/demo.yaml \
		$(BIN)/tripwire token create --name demo-reviewer-$$(date +%s) --role reviewer
	TRIPWIRE_HOME=demo-output TRIPWIRE_POLICY=triggers/demo.yaml $(BIN)/tripwire serve

services:
	@$(BIN)/python scripts/ensure_services.py

test: $(STAMP) services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP) services
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/validity.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/responses.py --rounds 2
	$(BIN)/python bench/sources.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/growth.py
	$(BIN)/python bench/restart.py --folders 300 --rounds 2

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
