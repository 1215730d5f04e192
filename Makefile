# Everyday commands. Each installs the project into .venv first when pyproject.toml is
# newer than the last install.

VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: run test lint bench clean

run: $(INSTALLED)
	$(VENV)/bin/export-pipeline demo --if-empty
	$(VENV)/bin/export-pipeline serve --sample-export

test: $(INSTALLED)
	$(VENV)/bin/pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

bench: $(INSTALLED)
	$(VENV)/bin/python -m bench

clean:
	rm -rf .export_pipeline

$(INSTALLED): pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@
