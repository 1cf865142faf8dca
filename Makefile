# fairfoundry: two commands on a fresh machine.
#   make quickstart  -- create .venv, install, run the offline pipeline on the bundled real NIH data, write reports
#   make test        -- create .venv, install with dev extras, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
QUICKSTART_OUT ?= quickstart-out

.PHONY: quickstart test lint bench docs clean venv

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

# core + torch (the bundled tiny encoder) for the quickstart pipeline
$(VENV)/.installed-run: $(VENV)/.created pyproject.toml
	$(PIP) install -q -e '.[torch]'
	touch $@

# everything, for the tests (peers used as oracles live in the dev extra)
$(VENV)/.installed-dev: $(VENV)/.created pyproject.toml
	$(PIP) install -q -e '.[all,dev]'
	touch $@ $(VENV)/.installed-run

quickstart: $(VENV)/.installed-run
	$(VENV)/bin/fairfoundry quickstart --out $(QUICKSTART_OUT) --overwrite

test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(PY) -m pytest -q -n 2 --durations=15

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks scripts

# the documentation site, offline, into site/ (a warning fails the build; tutorials are executed)
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(VENV)/.installed-dev
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(QUICKSTART_OUT) site .pytest_cache .ruff_cache
