# Newcomer commands: `make demo` (set up + enhance the faces of a sample photo), `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HD_WEIGHTS := pretrain_models/SPARNetHD_V4_Attn2D_net_H-epoch10.pth

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) results demo_results
