#!/usr/bin/env bash
# Test the four released models as the original project did, then score them with the paper's metrics.
# The models are named as in weights/released.py (`python -m scripts.download_weights` lists them): each
# is downloaded into the weights cache ($SPARNET_HOME, default ~/.cache/sparnet) on first use, and its
# network flags come from that table. The original commands, with a file path and every flag, still work.
# Runs on GPU when there is one, else on the CPU (`--gpus 1` falls back with a warning).
# `make reproduce` (scripts/reproduce.py) does all of this, downloads included, and prints one table.
# Folders: found by name in the release's test_dirs.tgz unpacked in ./test_dirs (or $TEST_DIRS), with the
# layout table of metrics/eval_sets.py (e.g. test_dirs/Helen_test_DIC/{LR,HR}, test_dirs/CelebA-TestN and
# test_dirs/CelebAHQ-Test-HR); each can be given through the environment instead:
#   HELEN_LR / HELEN_HR            Helen test set of DICNet: 16x16 LR and 128x128 HR faces
#   CELEBA_TESTN / CELEBA_TESTN_HR CelebA-TestN low-quality 512x512 faces and the CelebA-HQ test faces (FID)
#   INCEPTION                      pytorch-fid's pt_inception-2015-12-05-6726825d.pth for FID
#                                  (default: pytorch-fid's copy, else the weights cache, downloaded on first use)
set -euo pipefail
PY=${PY:-python}
GPUS=${GPUS:-1}
FOLDERS=$($PY -m scripts.reproduce --print_folders --test_dirs "${TEST_DIRS:-test_dirs}" \
    --helen_lr "${HELEN_LR:-}" --helen_hr "${HELEN_HR:-}" \
    --celeba_testn "${CELEBA_TESTN:-}" --celeba_testn_hr "${CELEBA_TESTN_HR:-}")
eval "$FOLDERS"

# SPARNet and SPARNet-Light-Attn3D: x8 on Helen (16x16 -> 128x128)
for MODEL in sparnet sparnet_light_attn3d; do
    $PY test.py --gpus "$GPUS" --name "$MODEL" --pretrain_model_path "$MODEL" \
        --dataset_name single --dataroot "$HELEN_LR" --save_as_dir "results_helen/$MODEL/"
    $PY -m scripts.evaluate --gpus "$GPUS" --results_dir "results_helen/$MODEL" \
        --gt_dir "$HELEN_HR" --metrics psnr,ssim,id --save_json "results_helen/$MODEL.json"
done

# SPARNetHD-Attn2D and -Attn3D: blind restoration of CelebA-TestN (512x512); FID against unpaired CelebA-HQ faces
for MODEL in sparnethd_attn2d sparnethd_attn3d; do
    $PY test.py --gpus "$GPUS" --name "$MODEL" --pretrain_model_path "$MODEL" --batch_size 2 \
        --dataset_name single --dataroot "$CELEBA_TESTN" --save_as_dir "results_CelebA-TestN/$MODEL/"
    $PY -m scripts.evaluate --gpus "$GPUS" --results_dir "results_CelebA-TestN/$MODEL" \
        --gt_dir "$CELEBA_TESTN_HR" --metrics fid ${INCEPTION:+--inception_weights "$INCEPTION"} \
        --save_json "results_CelebA-TestN/$MODEL.json"
done
