"""Training data pipeline speed alone: samples/s of one loader worker by stage, and the workers a GPU step needs.

    python -m scripts.benchmark_loader --dataroot /work/shared/data/faces_train_utk
    python -m scripts.benchmark_loader --dataroot ../datasets/FFHQ/imgs1024 --recipes ffhq --step_ms ffhq=900

Recipes, with train.sh's flags: `celeba` (SPARNet: --dataset_name celeba --load_size 128 --scale_factor 8,
batch 32) and `ffhq` (SPARNetHD: --dataset_name ffhq --load_size 512 and the blind degradations, batch 2).
Each one's training dataset is built by train.py's option parser and dataset class on --dataroot; its first
--images samples (epoch 0, train.py's seed) go through the dataset's stages in this process, each timed:
decode, crop/resize, degradations, to tensor, and the batch's collation. That is the work of one loader
process (`--num_threads` counts them): one intra-op thread for PyTorch and OpenCV, the files read once before
(page cache warm), CPU time (what a worker on a core of its own takes, whatever else runs on the machine).
A worker's time per batch is batch x time per sample; the workers needed for a GPU step are that over the
step time, rounded up (= ceil(batch / (samples/s of a worker x step seconds))).

Step times: pass yours (`--step_ms`; train.py logs seconds per iteration). By default they are an assumption:
a step's training FLOPs (counted with torch's FlopCounterMode on the published steps: 42.8 GFLOP per 128x128
SPARNet image, 6806 per 512x512 SPARNetHD image with its discriminators, VGG19 and EMA) over a sustained
--tflops 10 (a V100-class GPU in fp32), so 137 ms for SPARNet's batch 32 and 1361 ms for SPARNetHD's batch 2.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import json
import math
import os
import sys
import time
from dataclasses import dataclass

import cv2
import PIL
import torch

from data import create_dataset
from options.train_options import TrainOptions
from utils.atomic import atomic_write
from utils.cli import ArgumentParser, UserError, input_path, name_list, output_file, positive_float, positive_int, run
from utils.devices import cpu_model
from utils.image_io import ImageReadError
from utils.output_plan import OutputPlan
from utils.progress import progress

STAGES = ('decode', 'crop/resize', 'degrade', 'to tensor', 'collate')
WARM_UP = 2  # samples run before timing: first calls load libraries and fill caches


@dataclass(frozen=True)
class Recipe:
    flags: tuple
    batch: int
    train_gflop: float  # forward and backward of one image, all networks of the step


RECIPES = {
    'celeba': Recipe(('--model', 'sparnet', '--dataset_name', 'celeba', '--load_size', '128', '--scale_factor', '8'),
                     32, 42.8),
    'ffhq': Recipe(('--model', 'sparnethd', '--dataset_name', 'ffhq', '--load_size', '512'), 2, 6806.0),
}


def build_parser():
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataroot', required=True, type=input_path,
                        help='folder of face images (the HR faces of training)')
    parser.add_argument('--recipes', default=','.join(RECIPES), help=f"comma-separated among {','.join(RECIPES)}")
    parser.add_argument('--images', type=positive_int, default=200, help='timed samples per recipe (default: 200)')
    parser.add_argument('--step_ms', default='',
                        help='measured GPU step times, e.g. celeba=120,ffhq=900 (default: FLOPs over --tflops)')
    parser.add_argument('--tflops', type=positive_float, default=10.0,
                        help='sustained GPU TFLOP/s assumed for the default step times (default: 10)')
    parser.add_argument('--json', type=output_file, default=None, help='write all results here')
    return parser


def step_times(text: str, recipes: list[str], tflops: float) -> dict[str, tuple[float, str]]:
    """{recipe: (ms, source)} from `--step_ms name=ms,...`, the others from their FLOPs at `tflops`."""
    given = {}
    for item in filter(None, (part.strip() for part in text.split(','))):
        name, _, value = item.partition('=')
        name_list(name, RECIPES, '--step_ms')
        try:
            given[name] = float(value)
        except ValueError:
            given[name] = -1.0
        if not 0 < given[name] < math.inf:
            raise UserError(f"--step_ms: expected name=milliseconds (above 0), got {item!r}")
    return {name: (given[name], 'given') if name in given else
            (RECIPES[name].batch * RECIPES[name].train_gflop / tflops, f'assumed, {tflops:g} TFLOP/s')
            for name in recipes}


def build_dataset(name: str, dataroot: str, images: int):
    """The training dataset of `train.py` with the recipe's flags, on the first `images` images of `dataroot`."""
    recipe = RECIPES[name]
    opt = TrainOptions().parse(['--gpus', '0', '--dataroot', dataroot, '--num_threads', '0', '--batch_size',
                                str(recipe.batch), '--max_dataset_size', str(images + WARM_UP), *recipe.flags])
    return create_dataset(opt)


def staged_sample(dataset, index: int, clock=time.process_time) -> tuple[dict, list[float], tuple[int, int]]:
    """`dataset[index]` stage by stage: the sample, the seconds of the first four stages and the image's (H, W)."""
    rel_path = dataset.paths[index]
    start = clock()
    img = dataset.decode(rel_path)
    decoded = clock()
    rng = dataset.rng(index)
    hr = dataset.hr_face(img, rng)
    cropped = clock()
    lr, hr = dataset.degrade(hr, rng)
    degraded = clock()
    sample = dataset.to_sample(lr, hr, rel_path, [])
    return sample, [decoded - start, cropped - decoded, degraded - cropped, clock() - degraded], img.shape[:2]


def check_stages(dataset, index: int, staged: dict) -> None:
    """The stages timed gave what the dataset gives (else the benchmark would time something else)."""
    expected = dataset[index]
    if not (torch.equal(staged['LR'], expected['LR']) and torch.equal(staged['HR'], expected['HR'])):
        raise RuntimeError(f"{type(dataset).__name__}: the timed stages differ from __getitem__")


def collate_seconds(dataset, samples: list[dict], clock=time.process_time) -> float:
    start = clock()
    dataset.collate(samples)
    return clock() - start


def image_sizes(sizes: list[tuple[int, int]]) -> str:
    """'200x200' or '150x150 to 250x300' (smallest and largest area)."""
    small, large = min(sizes, key=lambda s: s[0] * s[1]), max(sizes, key=lambda s: s[0] * s[1])
    text = f'{small[1]}x{small[0]}'
    return text if small == large else f'{text} to {large[1]}x{large[0]}'


def benchmark_recipe(name: str, args, step: tuple[float, str]) -> dict:
    dataset = build_dataset(name, args.dataroot, args.images)
    indices = range(len(dataset.paths))
    for rel_path in dataset.paths:  # page cache warm: time the decoding, not the disk
        with open(os.path.join(dataset.root, rel_path), 'rb') as f:
            f.read()
    for index in indices[:WARM_UP]:
        dataset[index]
    timed = indices[WARM_UP:] if len(indices) > WARM_UP else indices
    batch, totals, sizes, unreadable, samples = RECIPES[name].batch, [0.0] * len(STAGES), [], 0, []
    bar = progress(total=len(timed), desc=name, unit='sample')
    for index in timed:
        try:
            sample, seconds, size = staged_sample(dataset, index)
        except ImageReadError:
            unreadable += 1
            bar.update(1)
            continue
        if not sizes:
            check_stages(dataset, index, sample)
        totals[:4] = [total + s for total, s in zip(totals, seconds)]
        sizes.append(size)
        samples.append(sample)
        if len(samples) == batch:
            totals[4] += collate_seconds(dataset, samples)
            samples = []
        bar.update(1)
    bar.close()
    if samples:  # the last, partial batch
        totals[4] += collate_seconds(dataset, samples)
    count = len(timed) - unreadable
    if count == 0:
        raise UserError(f"--dataroot {args.dataroot}: none of the {len(timed)} images timed is readable")
    ms = [1000 * total / count for total in totals]
    per_second = 1000 / sum(ms)
    return {'recipe': name, 'images': count, 'unreadable': unreadable, 'image_size': image_sizes(sizes),
            'load_size': dataset.load_size, 'stage_ms': dict(zip(STAGES, ms)), 'total_ms': sum(ms),
            'samples_per_s': per_second, 'batch': batch, 'worker_ms_per_batch': batch * sum(ms),
            'step_ms': step[0], 'step_source': step[1],
            'workers': math.ceil(batch / (per_second * step[0] / 1000))}


def format_table(rows: list[dict]) -> str:
    lines = ['| recipe | images | size | ' + ' | '.join(f'{stage} ms' for stage in STAGES) +
             ' | total ms | samples/s per worker | batch | ms per batch, one worker | GPU step ms | workers needed |',
             '|---|---:|---|' + '---:|' * (len(STAGES) + 6)]
    for row in rows:
        stages = ' | '.join(f"{row['stage_ms'][stage]:.2f}" for stage in STAGES)
        lines.append(f"| {row['recipe']} | {row['images']} | {row['image_size']} | {stages} | {row['total_ms']:.2f} | "
                     f"{row['samples_per_s']:.1f} | {row['batch']} | {row['worker_ms_per_batch']:.0f} | "
                     f"{row['step_ms']:.4g} ({row['step_source']}) | "
                     f"{row['workers']} |")
    return '\n'.join(lines)


def notes(rows: list[dict]) -> list[str]:
    """What the figures do not show: unreadable files, faces enlarged where the recipe reduces them."""
    lines = []
    for row in rows:
        if row['unreadable']:
            lines.append(f"{row['recipe']}: {row['unreadable']} unreadable file(s) left out")
        if row['recipe'] == 'ffhq' and row['image_size'] != '1024x1024':
            lines.append(f"ffhq: the images ({row['image_size']}) are not FFHQ's 1024x1024 faces, which the recipe "
                         f"decodes (PNG) and reduces to {row['load_size']}: those cost more per sample")
    return lines


def environment() -> dict:
    return {'cpu': cpu_model(), 'cores': os.cpu_count(), 'threads': 1,
            'torch': torch.__version__, 'opencv': cv2.__version__, 'pillow': PIL.__version__,
            'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY', 'unset'), 'date': time.strftime('%Y-%m-%d')}


def main(argv=None):
    args = build_parser().parse_args(argv)
    recipes = name_list(args.recipes, RECIPES, '--recipes')
    plan = OutputPlan()
    plan.reads_folder('--dataroot', args.dataroot)
    plan.writes_file('--json', args.json)
    plan.check()
    steps = step_times(args.step_ms, recipes, args.tflops)
    threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)  # as in a loader process
    cv2.setNumThreads(1)
    load_start = os.getloadavg()
    try:
        rows = [benchmark_recipe(name, args, steps[name]) for name in recipes]
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    load_end = os.getloadavg()
    env = environment()
    print('\n' + format_table(rows))
    for line in notes(rows):
        print(f'note: {line}')
    print(f"environment: {env['cpu']}, {env['cores']} cores, {env['threads']} thread (torch and OpenCV), "
          f"torch {env['torch']}, OpenCV {env['opencv']}, Pillow {env['pillow']}, "
          f"OMP_WAIT_POLICY {env['omp_wait_policy']}, "
          f"{env['date']}; load average (1 min) {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")
    if args.json:
        with plan.claimed(), atomic_write(args.json, 'w', encoding='utf-8') as f:
            json.dump({'command': ' '.join(sys.argv), 'environment': env, 'rows': rows,
                       'load_average': {'start': load_start, 'end': load_end}}, f, indent=1)
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    run(main)
