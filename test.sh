#!/usr/bin/env bash
# Test the four released models as the original project did, then score them with the paper's metrics.
# Runs on GPU when there is one, else on the CPU (`--gpus 1` falls back with a warning).
# Folders (override through the environment):
#   HELEN_LR / HELEN_HR            Helen test set of DICNet: 16x16 LR and 128x128 HR faces
#   CELEBA_TESTN / CELEBA_TESTN_HR CelebA-TestN low-quality 512x512 faces and their CelebA-HQ ground truth
#   INCEPTION                      pytorch-fid's pt_inception-2015-12-05-6726825d.pth (for FID)
set -euo pipefail
PY=${PY:-python}
GPUS=${GPUS:-1}
HELEN_LR=${HELEN_LR:-test_dirs/Helen_test_DIC/LR}
HELEN_HR=${HELEN_HR:-test_dirs/Helen_test_DIC/HR}
CELEBA_TESTN=${CELEBA_TESTN:-test_dirs/CelebA-TestN}
CELEBA_TESTN_HR=${CELEBA_TESTN_HR:-test_dirs/CelebA-TestN-HR}
INCEPTION=${INCEPTION:-pretrain_models/pt_inception-2015-12-05-6726825d.pth}

# SPARNet
$PY test.py --gpus "$GPUS" --model sparnet --name SPARNet_S16_V4_Attn2D \
    --load_size 128 --dataset_name single --dataroot "$HELEN_LR" \
    --pretrain_model_path ./pretrain_models/SPARNet-V16-S4-epoch20.pth \
    --save_as_dir results_helen/SPARNet_S16_V4_Attn2D/
$PY scripts/evaluate.py --gpus "$GPUS" --results_dir results_helen/SPARNet_S16_V4_Attn2D \
    --gt_dir "$HELEN_HR" --metrics psnr,ssim,id --save_json results_helen/SPARNet_S16_V4_Attn2D.json

# SPARNet-Light-Attn3D
$PY test.py --gpus "$GPUS" --model sparnet --name SPARNet_S16_V4_Attn3D --res_depth 1 --att_name spar3d \
    --load_size 128 --dataset_name single --dataroot "$HELEN_LR" \
    --pretrain_model_path ./pretrain_models/SPARNetLight_Attn3D-epoch20.pth \
    --save_as_dir results_helen/SPARNetLight_Attn3D/
$PY scripts/evaluate.py --gpus "$GPUS" --results_dir results_helen/SPARNetLight_Attn3D \
    --gt_dir "$HELEN_HR" --metrics psnr,ssim,id --save_json results_helen/SPARNetLight_Attn3D.json

# SPARNetHD-Attn2D
$PY test.py --gpus "$GPUS" --model sparnethd --name SPARNetHD_V4_Attn2D --res_depth 10 --att_name spar --Gnorm 'in' \
    --load_size 512 --dataset_name single --dataroot "$CELEBA_TESTN" --batch_size 2 \
    --pretrain_model_path ./pretrain_models/SPARNetHD_V4_Attn2D_net_H-epoch10.pth \
    --save_as_dir results_CelebA-TestN/SPARNetHD_V4_Attn2D/
$PY scripts/evaluate.py --gpus "$GPUS" --results_dir results_CelebA-TestN/SPARNetHD_V4_Attn2D \
    --gt_dir "$CELEBA_TESTN_HR" --metrics fid,id --inception_weights "$INCEPTION" \
    --save_json results_CelebA-TestN/SPARNetHD_V4_Attn2D.json

# SPARNetHD-Attn3D
$PY test.py --gpus "$GPUS" --model sparnethd --name SPARNetHD_V4_Attn3D --res_depth 10 --att_name spar3d --Gnorm 'in' \
    --load_size 512 --dataset_name single --dataroot "$CELEBA_TESTN" --batch_size 2 \
    --pretrain_model_path ./pretrain_models/SPARNetHD_V4_Attn3D_net_H-epoch10.pth \
    --save_as_dir results_CelebA-TestN/SPARNetHD_V4_Attn3D/
$PY scripts/evaluate.py --gpus "$GPUS" --results_dir results_CelebA-TestN/SPARNetHD_V4_Attn3D \
    --gt_dir "$CELEBA_TESTN_HR" --metrics fid,id --inception_weights "$INCEPTION" \
    --save_json results_CelebA-TestN/SPARNetHD_V4_Attn3D.json
