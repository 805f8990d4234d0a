# llmpipe: `make pipeline` sets up and runs every stage on the demo data; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUN    ?= demo
CONFIG ?= configs/pipeline.yaml
DEMO   ?= data/demo
LLMPIPE := $(VENV)/bin/llmpipe
STAMP  := $(VENV)/.installed

.PHONY: setup pipeline test sample-data bench-setup bench-clean bench-dedup bench-multilingual bench-tokenizer bench-train distclean

setup: $(STAMP)

# Rebuilt only when the project's requirements change, so a second `make setup` takes a second.
# Without a GPU the CPU wheel of torch is installed first, so the project's torch range is
# already met and pip does not pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "GPU found: torch comes from the project's range (CUDA build)"; \
	else \
	  $(PY) -m pip install -q 'torch==2.13.0' || $(PY) -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu; \
	fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

sample-data: setup
	$(LLMPIPE) sample-data --output $(DEMO)

pipeline: sample-data
	$(LLMPIPE) run --config $(CONFIG) --run-name $(RUN)

# One target per stage of the registry (pipelines/registry.py), e.g. `make pretrain-stage`: every
# stage up to that one, each skipped when its manifest is up to date.
%-stage: sample-data
	$(LLMPIPE) run --config $(CONFIG) --run-name $(RUN) --to $*

test: setup
	$(PY) -m pytest

bench-clean: bench-setup
	$(PY) bench/clean_throughput.py

bench-dedup: bench-setup
	$(PY) bench/dedup_throughput.py

# Per-language clean/dedup quality on a labelled corpus built from this machine's translated text
# (vim tutors, man pages, gettext catalogs, ...): appends a section to bench/RESULTS.md.
bench-multilingual: setup
	$(PY) bench/multilingual_eval.py

bench-tokenizer: setup
	$(PY) bench/tokenizer_throughput.py

bench-train: setup
	$(PY) bench/train_throughput.py

distclean:
	rm -rf $(VENV) runs data build *.egg-info

# Benchmarks only: datatrove (and spaCy) live in their own venv, never in the project's.
bench-setup: setup
	test -x bench/.venv/bin/python || $(PYTHON) -m venv bench/.venv
	bench/.venv/bin/pip install -q 'datatrove[processing]' spacy orjson
