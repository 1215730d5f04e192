# Everyday commands. Each installs the project into .venv first when pyproject.toml or
# constraints.txt is newer than the last install. constraints.txt pins every
# dependency to the versions the suite last passed with; refresh it with
# `make constraints` after changing dependencies.

VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: run test lint bench clean constraints

run: $(INSTALLED)
	$(VENV)/bin/export-pipeline demo --if-empty
	$(VENV)/bin/export-pipeline serve --sample-export

test: lint
	$(VENV)/bin/pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

bench: $(INSTALLED)
	$(VENV)/bin/python -m bench
	$(VENV)/bin/python -m bench.latency

clean:
	rm -rf .export_pipeline

constraints: $(INSTALLED)
	$(VENV)/bin/pip freeze --exclude-editable > constraints.txt

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev,bench]' -c constraints.txt
	touch $@
