# Newcomer commands: `make demo` (set up + enhance the faces of a sample photo), `make test` (set up + tests).
# Also: `make test-gpu` (set up + the tests marked gpu: run on a machine with CUDA GPUs, skipped elsewhere),
# `make app` (set up + the web page), `make reproduce` (set up + the paper's tables from the released
# models; REPRODUCE_ARGS="--models sparnet" etc.). The demo's SPARNetHD weights are downloaded into the weights
# cache ($SPARNET_HOME, default ~/.cache/sparnet) on first use; offline, it stops with one line saying where to
# put the file by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APP_STAMP := $(VENV)/.installed-app
APP_ARGS ?=

.PHONY: setup test test-gpu demo app reproduce clean
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

test: $(STAMP) $(APP_STAMP)
	$(PY) -m pytest -q tests

test-gpu: $(STAMP) $(APP_STAMP)
	$(PY) -m pytest -q -m gpu tests

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
	rm -rf $(VENV) results demo_results samples
