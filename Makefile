# Newcomer commands: `make demo` (set up + enhance the faces of a sample photo), `make test` (set up + tests).
# Also: `make test-fast` (the tests not marked slow, about a minute), `make lint` (ruff), `make typecheck` (mypy
# over the public surface), `make docs` (serve the
# documentation; `make docs-build` builds it with --strict as CI does),
# `make test-gpu` (set up + the tests marked gpu: run on a machine with CUDA GPUs, skipped elsewhere),
# `make app` (set up + the web page), `make reproduce` (set up + the paper's tables from the released
# models; REPRODUCE_ARGS="--models sparnet" etc.). The demo's SPARNetHD weights are downloaded into the weights
# cache ($SPARNET_HOME, default ~/.cache/sparnet) on first use; offline, it stops with one line saying where to
# put the file by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APP_STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev
APP_ARGS ?=
# Three test processes (pytest-xdist) on two cores, each with one intra-op thread: the tests are small and many,
# and while one waits on a subprocess, a browser or a server, the others compute (5.6 min against 6.1 with two).
PYTEST := $(PY) -m pytest -q -n 3

.PHONY: setup test test-fast test-gpu lint typecheck docs docs-build demo app reproduce clean
DEMO_PHOTO := samples/astronaut.jpg

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $(STAMP)

# The web page and its browser test (Gradio, Playwright); the core install stays without them.
$(APP_STAMP): $(STAMP) requirements-app.txt
	$(PY) -m pip install -r requirements-app.txt
	touch $(APP_STAMP)

# The tests, the linter and the documentation site: requirements-dev.txt (the app's requirements included).
$(DEV_STAMP): $(APP_STAMP) requirements-dev.txt requirements-docs.txt
	$(PY) -m pip install -r requirements-dev.txt
	touch $(DEV_STAMP)

test: $(DEV_STAMP)
	$(PYTEST) tests

test-fast: $(DEV_STAMP)
	$(PYTEST) -m "not slow" tests

test-gpu: $(DEV_STAMP)
	$(PY) -m pytest -q -m gpu tests

lint: $(DEV_STAMP)
	$(PY) -m ruff check .

# mypy over the public surface: the Python API and what builds networks (pyproject.toml's [tool.mypy])
typecheck: $(DEV_STAMP)
	$(PY) -m mypy

docs: $(DEV_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

docs-build: $(DEV_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

demo: $(STAMP)
	test -f $(DEMO_PHOTO) || $(PY) -m scripts.make_sample_photo --output $(DEMO_PHOTO)
	$(PY) test_enhance_single_unalign.py --pretrain_model_path sparnethd_attn2d \
		--test_img_path $(DEMO_PHOTO) --results_dir demo_results
	@echo "enhanced photo: demo_results/hq_final.jpg"

reproduce: $(STAMP)
	$(PY) -m scripts.reproduce $(REPRODUCE_ARGS)

# The web page on http://127.0.0.1:7860 (flags of app.py in APP_ARGS, e.g. make app APP_ARGS="--port 8000")
app: $(APP_STAMP)
	$(PY) app.py $(APP_ARGS)

clean:
	rm -rf $(VENV) results demo_results samples site
