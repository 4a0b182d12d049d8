# Two commands for a fresh machine (see README.md):
#   make book   set up and build the site (offline, warnings as errors)
#   make test   set up and run the test suite
# Both install what is missing: Graphviz's `dot` (Debian package graphviz), Python's venv module
# (python3-venv), the Fashion-MNIST files of the model zoo (Debian package dataset-fashion-mnist) and the
# pinned Python environment in .venv (requirements.txt), with attnlib installed
# in editable mode. Python 3.11 or newer (the pinned numpy, SciPy and IPython need it).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: book test setup system clean
.DEFAULT_GOAL := book

system:
	@command -v dot >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y graphviz; }
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv; }
	@[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || [ -n "$$ATTNLIB_FASHION_MNIST" ] || { $(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist; }

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: system $(BIN)/.installed

book: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter-book build . -W -n --keep-going

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2 -q

clean:
	rm -rf _build
