"""Training-step speed: the published step as users ran it, against --fast_train and --fast_train --precision bf16.

    python -m scripts.benchmark_training --json training_benchmark.json
    python -m scripts.benchmark_training --models sparnet --sparnet_batch 2 --repeats 1

In one run, from the same weights and the same batch, for SPARNet (L1, Adam; batch 16 at 128x128)
and the SPARNetHD GAN step (G, three discriminators, VGG19, EMA; batch 2 at 256x256):
- `published`: the plain fp32 modules stepped as the published train.py did (`baselines/published.py`);
- `fast_fp32`: train.py's step with --fast_train;
- `fast_bf16`: train.py's step with --fast_train --precision bf16 (where the device runs bf16 natively).
Seconds per step: the median of --repeats timed steps after a warm-up step and a step measuring the
peak memory it adds (RSS on the CPU, CUDA's max allocated), the variants taking turns so that load
from other processes hits them alike. The environment is printed beside the table; a set
OMP_WAIT_POLICY is refused, since it slows the published step far more than ours. The weights are
random (VGG19's too): a step's time does not depend on them.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from skimage import data as skimage_data

from baselines.environment import check_baseline_environment, describe_environment, environment_line
from baselines.published import published_sparnet_step, published_sparnethd_step
from models import create_model
from options.train_options import TrainOptions
from utils.atomic import atomic_write
from utils.cli import ArgumentParser, name_list, output_file, positive_int, run
from utils.devices import native_bf16_cpu, set_inference_threads
from utils.output_plan import OutputPlan
from utils.peak_memory import PeakMemory

VARIANTS = {'published': None, 'fast_fp32': 'fp32', 'fast_bf16': 'bf16'}  # name: --precision with --fast_train
SCALE = {'sparnet': 8, 'sparnethd': 4}  # how far the HR crops are reduced (bicubic) to make the LR inputs


def build_parser():
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', default='sparnet,sparnethd', help='comma-separated among sparnet,sparnethd')
    parser.add_argument('--variants', default=','.join(VARIANTS), help=f"comma-separated among {','.join(VARIANTS)}")
    parser.add_argument('--repeats', type=positive_int, default=3, help='timed steps per variant (default: 3)')
    parser.add_argument('--sparnet_batch', type=positive_int, default=16)
    parser.add_argument('--sparnet_size', type=positive_int, default=128)
    parser.add_argument('--hd_batch', type=positive_int, default=2)
    parser.add_argument('--hd_size', type=positive_int, default=256)
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='intra-op threads (default: one per usable core)')
    parser.add_argument('--gpus', type=int, default=0, help='run on a GPU when 1 (default: 0, the CPU)')
    parser.add_argument('--json', type=output_file, default=None, help='write all results here')
    return parser


def random_vgg19(path):
    """Random VGG19 features in torchvision's file format, for the perceptual loss."""
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs['E'])
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()}, path)
    return path


def batch_of_faces(batch, size, scale, device):
    """(LR, HR): random crops of scikit-image's astronaut at size x size, LR bicubic-reduced by `scale` and back."""
    rng, astronaut = np.random.default_rng(0), skimage_data.astronaut()
    pairs = []
    for _ in range(batch):
        top, left = rng.integers(0, 512 - 256, size=2)
        hr = Image.fromarray(astronaut[top:top + 256, left:left + 256]).resize((size, size), Image.BICUBIC)
        lr = hr.resize((size // scale, size // scale), Image.BICUBIC).resize((size, size), Image.BICUBIC)
        pairs.append([torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(127.5).sub(1)
                      for image in (lr, hr)])
    return [torch.stack(images).to(device) for images in zip(*pairs)]


def training_model(model, precision, batch, size, gpus, vgg_path):
    """The model of `train.py --model <model>` at its defaults, set up for training, weights of seed 0; with
    --fast_train --precision `precision`, else plain fp32 (for the published step)."""
    flags = ['--gpus', str(gpus), '--model', model, '--load_size', str(size), '--batch_size', str(batch)]
    if model == 'sparnethd':
        flags += ['--vgg_weights', vgg_path]
    if precision is not None:
        flags += ['--fast_train', '--precision', precision]
    torch.manual_seed(0)
    return create_model(TrainOptions().parse(flags)).setup_training(1)


def step_function(model, trained, precision, lr, hr):
    """A function running one training step of the variant, returning its (G) loss."""
    if precision is not None:
        def ours():
            trained.set_input({'LR': lr, 'HR': hr, 'LR_paths': [''] * len(lr)})
            trained.optimize_parameters()
            return float(sum(trained.get_current_losses()[name] for name in trained.losses if name != 'D'))
        return ours
    betas = (trained.opt.beta1, 0.99)
    if model == 'sparnet':
        optimizer = torch.optim.Adam(trained.netG.parameters(), trained.opt.lr, betas=betas)
        return lambda: published_sparnet_step(trained.netG, optimizer, lr, hr)
    nets = {'G': trained.netG, 'H': trained.netH, 'D': trained.netD}
    optimizers = {'G': torch.optim.Adam(trained.netG.parameters(), trained.opt.g_lr, betas=betas),
                  'D': torch.optim.Adam(trained.netD.parameters(), trained.opt.d_lr, betas=betas)}
    return lambda: published_sparnethd_step(nets, optimizers, trained.criterion_pcp, lr, hr, trained.opt.ema_decay)


def timed(step, device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    loss = step()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start, loss


def benchmark_model(model, batch, size, variants, args, device, vgg_path):
    """{variant: {'times', 'seconds_per_step', 'peak_memory_mb', 'first_loss'}} of one model."""
    lr, hr = batch_of_faces(batch, size, SCALE[model], device)
    steps, results = {}, {}
    for variant in variants:
        trained = training_model(model, VARIANTS[variant], batch, size, args.gpus, vgg_path)
        steps[variant] = step_function(model, trained, VARIANTS[variant], lr, hr)
        _, first_loss = timed(steps[variant], device)  # warm-up: optimizer states allocated, kernels chosen
        with PeakMemory(device) as memory:
            steps[variant]()
        results[variant] = {'times': [], 'first_loss': first_loss, 'peak_memory_mb': memory.peak_mb}
    for repeat in range(args.repeats):
        for variant in variants:
            results[variant]['times'].append(timed(steps[variant], device)[0])
        print(f'  {model} repeat {repeat + 1}/{args.repeats}, load average {os.getloadavg()[0]:.2f}', flush=True)
    for result in results.values():
        result['seconds_per_step'] = statistics.median(result['times'])
    return results


def format_table(rows):
    lines = ['| model | batch | size | variant | s / step | vs published | peak MB | first loss |',
             '|---|---:|---:|---|---:|---:|---:|---:|']
    for row in rows:
        speedup = f"{row['vs_published']:.2f}" if row['vs_published'] else '-'
        memory = f"{row['peak_memory_mb']:.0f}" if row['peak_memory_mb'] is not None else '-'
        lines.append(f"| {row['model']} | {row['batch']} | {row['size']} | {row['variant']} | "
                     f"{row['seconds_per_step']:.3f} | {speedup} | {memory} | {row['first_loss']:.4f} |")
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_baseline_environment()
    plan = OutputPlan()
    plan.writes_file('--json', args.json)
    plan.check()
    models = name_list(args.models, SCALE, '--models')
    variants = name_list(args.variants, VARIANTS, '--variants')
    device = torch.device('cuda' if args.gpus > 0 and torch.cuda.is_available() else 'cpu')
    if 'fast_bf16' in variants and device.type == 'cpu' and not native_bf16_cpu():
        print('fast_bf16: skipped (this CPU has neither AVX512-BF16 nor AMX-BF16)')
        variants.remove('fast_bf16')
    threads = set_inference_threads(args.threads)
    env = describe_environment(device, threads)
    load_start = os.getloadavg()
    sizes = {'sparnet': (args.sparnet_batch, args.sparnet_size), 'sparnethd': (args.hd_batch, args.hd_size)}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        vgg_path = random_vgg19(os.path.join(folder, 'vgg19.pth')) if 'sparnethd' in models else None
        for model in models:
            batch, size = sizes[model]
            results = benchmark_model(model, batch, size, variants, args, device, vgg_path)
            published = results.get('published', {}).get('seconds_per_step')
            rows += [{'model': model, 'batch': batch, 'size': size, 'variant': variant, **result,
                      'vs_published': published / result['seconds_per_step'] if published else None}
                     for variant, result in results.items()]
    load_end = os.getloadavg()
    print('\n' + format_table(rows))
    print(environment_line(env, load_start, load_end))
    if args.json:
        with plan.claimed(), atomic_write(args.json, 'w', encoding='utf-8') as f:
            json.dump({'command': ' '.join(sys.argv), 'environment': env,
                       'load_average': {'start': load_start, 'end': load_end}, 'rows': rows}, f, indent=1)
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    run(main)
