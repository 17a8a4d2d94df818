# Mnemo: two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYS_PKGS := bubblewrap podman runc

export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install system-packages sandbox-image run stop test bench lint fmt clean

install: system-packages $(STAMP) sandbox-image

# Idempotent: installs only what is missing; skipped without root or apt.
system-packages:
	@missing=""; for p in $(SYS_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    (apt-get update -qq >/dev/null 2>&1 || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: missing system packages ($$missing): install them for the sandbox runners"; fi; \
	fi

# The minimal Python image the docker sandbox runs tools in, built from Debian packages and imported
# into podman (no registry is needed). Skipped when it exists, or when podman is not installed.
sandbox-image: system-packages
	@if command -v podman >/dev/null; then scripts/sandbox-image.sh mnemo-sandbox:py311; \
	else echo "note: podman is not installed; the docker sandbox backend will be unavailable"; fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/python -m mnemo.demo

stop:
	@test -x $(BIN)/mnemo && $(BIN)/mnemo down || true

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info
