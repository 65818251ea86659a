# Newcomer commands: `make demo` (set up + enhance the faces of a sample photo), `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HD_WEIGHTS := pretrain_models/SPARNetHD_V4_Attn2D_net_H-epoch10.pth

.PHONY: setup test demo clean
DEMO_PHOTO := samples/astronaut.jpg

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	test -f $(DEMO_PHOTO) || $(PY) scripts/make_sample_photo.py --output $(DEMO_PHOTO)
	$(PY) test_enhance_single_unalign.py --gpus 1 --model sparnethd --name SPARNetHD_V4_Attn2D \
		--res_depth 10 --att_name spar --Gnorm in --pretrain_model_path $(HD_WEIGHTS) \
		--test_img_path $(DEMO_PHOTO) --results_dir demo_results
	@echo "enhanced photo: demo_results/hq_final.jpg"

clean:
	rm -rf $(VENV) results demo_results samples
