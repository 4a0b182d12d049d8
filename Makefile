# Two commands for a fresh machine (see README.md):
#   make book   set up and build the site (offline, warnings as errors)
#   make test   set up, build the site if it is missing, and run the test suite (browser tests included)
# Both install what is missing: Graphviz's `dot` (Debian package graphviz, used by torchviz), Python's venv
# module (python3-venv), the Fashion-MNIST files of the model zoo (Debian package dataset-fashion-mnist),
# Node.js and npm (the site's MathJax and widget scripts, pinned by package-lock.json),
# Chromium (the browser tests drive /usr/bin/chromium), the pinned Python environment in .venv
# (requirements.txt, Playwright included) with attnlib installed in editable mode, and node_modules (npm ci).
# Python 3.11 or newer (the pinned numpy, SciPy and IPython need it).
#   make serve  serve the built site on http://127.0.0.1:8000 (the live parts of a page need HTTP)
# make book also exports every zoo model to ONNX for the live pages (python -m attnlib.zoo export-onnx, run by
# book/_ext/site_assets.py; about a minute the first time, then copied from ~/.cache/attnlib/onnx or $ATTNLIB_CACHE).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SITE   := _build/html

.PHONY: book test setup system serve clean
.DEFAULT_GOAL := book

system:
	@command -v dot >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y graphviz; }
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv; }
	@[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || [ -n "$$ATTNLIB_FASHION_MNIST" ] || { $(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist; }
	@command -v npm >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs npm; }
	@[ -x /usr/bin/chromium ] || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@echo "rapidocr-onnxruntime: only its model files (the PP-OCRv4 text detector the SE chapter reads), no dependencies"
	$(BIN)/python -m pip install -q --no-deps rapidocr-onnxruntime==1.4.4
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# npm ci installs exactly package-lock.json (no install scripts run); the book copies the files it needs
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

setup: system $(BIN)/.installed node_modules/.package-lock.json

book: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter-book build . -W -n --keep-going

# the browser tests (tests/test_site.py) open every page of the built site: build it first if it is missing
$(SITE)/index.html:
	$(MAKE) book

test: setup $(SITE)/index.html
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2 -q

serve: $(SITE)/index.html
	@echo "serving $(SITE) on http://127.0.0.1:8000/ (Ctrl-C stops)"
	$(PYTHON) -m http.server 8000 --bind 127.0.0.1 --directory $(SITE)

clean:
	rm -rf _build
