#!/usr/bin/env bash
# The four released models, with the published commands (only --dataroot may need changing).
# --published_epochs trains --total_epochs + 1 epochs, as the published loop did for the released models.
# Add --continue_train to resume an interrupted run. For several GPUs through DDP, replace
# `python train.py --gpus 2` by `torchrun --nproc_per_node 2 train.py --gpus 1`.
set -e

# SPARNet (2D attention)
python train.py --gpus 1 --name SPARNet_S16_V4_Attn2D --model sparnet \
    --Gnorm "bn" --lr 0.0002 --beta1 0.9 --scale_factor 8 --load_size 128 \
    --dataroot ../datasets/CelebA --dataset_name celeba --batch_size 32 --total_epochs 20 --published_epochs \
    --visual_freq 100 --print_freq 10 --save_latest_freq 500

# SPARNet-Light (3D attention)
python train.py --gpus 1 --name SPARNet_Light_S16_V4_Attn3D --model sparnet \
    --res_depth 1 --att_name spar3d \
    --Gnorm "bn" --lr 0.0002 --beta1 0.9 --scale_factor 8 --load_size 128 \
    --dataroot ../datasets/CelebA --dataset_name celeba --batch_size 32 --total_epochs 20 --published_epochs \
    --visual_freq 100 --print_freq 10 --save_latest_freq 500

# SPARNetHD (2D attention)
python train.py --gpus 2 --name SPARNetHD_V4_Attn2D --model sparnethd \
    --Gnorm "in" --Dnorm "in" --g_lr 0.0001 --d_lr 0.0004 --beta1 0.5 --load_size 512 \
    --dataroot ../datasets/FFHQ/imgs1024 --dataset_name ffhq --batch_size 2 --total_epochs 10 --published_epochs \
    --visual_freq 100 --print_freq 50 --save_latest_freq 1000

# SPARNetHD (3D attention)
python train.py --gpus 2 --name SPARNetHD_V4_Attn3D --model sparnethd --att_name spar3d \
    --Gnorm "in" --Dnorm "in" --g_lr 0.0001 --d_lr 0.0004 --beta1 0.5 --load_size 512 \
    --dataroot ../datasets/FFHQ/imgs1024 --dataset_name ffhq --batch_size 2 --total_epochs 10 --published_epochs \
    --visual_freq 100 --print_freq 50 --save_latest_freq 1000
