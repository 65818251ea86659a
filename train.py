"""Train SPARNet (CelebA, L1) or SPARNetHD (FFHQ, GAN + EMA generator) on the CPU, one GPU or many.

    python train.py --gpus 1 --name SPARNet_S16_V4_Attn2D --model sparnet --Gnorm bn --lr 0.0002 \
        --beta1 0.9 --scale_factor 8 --load_size 128 --dataroot ../datasets/CelebA --dataset_name celeba \
        --batch_size 32 --total_epochs 20 --visual_freq 100 --print_freq 10 --save_latest_freq 500

`torchrun --nproc_per_node N train.py ...` trains with DistributedDataParallel. `--continue_train`
resumes from `<checkpoints_dir>/<name>/latest` exactly where the run stopped; Ctrl-C or SIGTERM
save `latest` first. The loop itself is `training/trainer.py`.
"""
from options.train_options import TrainOptions
from training.run import train
from utils.cli import run


def main(argv=None):
    return train(TrainOptions().parse(argv))


if __name__ == '__main__':
    run(main)
