"""The Python API against the whole-photo script on the same photo: seconds per photo, and whether the files are
the same, in one process, in turns, on the same weights.

    python -m scripts.benchmark_api --photo ../shared/data/faces_dev/img13.jpg --count 3 --repeats 2

The script (`test_enhance_single_unalign.py`'s run, in this process) enhances a folder of --count copies of the
photo, its seconds per photo read from its --report (model loading left out, as the photos of a folder share it);
the API (`api.PhotoRestorer`, built once) restores each copy and writes the same results with the script's own
writer. Weights: a SPARNetHD of random weights in the released format unless --weights gives a file.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import json
import os
import shutil
import statistics
import tempfile
import time

import torch

from api import PhotoRestorer
from archs.generator_spec import random_generator
from baselines.environment import describe_environment, environment_line
from inference.photo_results import save_results
from inference.whole_photos import enhance_whole_photos
from options.test_options import TestOptions
from utils.cli import ArgumentParser, UserError, input_path, positive_int, run
from utils.devices import set_inference_threads
from weights.released import DEFAULT_PHOTO_MODEL, RELEASED_MODELS


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--photo', type=input_path, required=True, help='a photo with at least one face')
    parser.add_argument('--count', type=positive_int, default=3, help='copies of the photo run each way (default 3)')
    parser.add_argument('--repeats', type=positive_int, default=2, help='runs of each way, in turns (default 2)')
    parser.add_argument('--weights', type=input_path, default='',
                        help='SPARNetHD weights (default: random ones in the released format)')
    parser.add_argument('--detector', default='cnn', choices=('cnn', 'hog'), help='face detector (default: cnn)')
    return parser


def script_seconds(folder: str, weights: str, detector: str, out: str) -> list[float]:
    """Seconds per photo of the whole-photo script's run over `folder`, from its report."""
    report = os.path.join(out, 'report.jsonl')
    code = enhance_whole_photos(TestOptions().parse(
        ['--gpus', '0', '--pretrain_model_path', weights, '--detector', detector, '--test_img_path', folder,
         '--results_dir', os.path.join(out, 'results'), '--report', report], default_weights=DEFAULT_PHOTO_MODEL))
    if code != 0:
        raise UserError(f'the whole-photo script failed on {folder} (exit {code})')
    with open(report, encoding='utf-8') as handle:
        return [line['seconds'] for line in map(json.loads, handle) if line['status'] == 'done']


def api_seconds(restorer: PhotoRestorer, folder: str, out: str) -> list[float]:
    """Seconds per photo of `restorer.restore` and the script's writer of the results, each photo of `folder`."""
    seconds = []
    for name in sorted(os.listdir(folder)):
        start = time.perf_counter()
        save_results(restorer.restore(os.path.join(folder, name)), os.path.join(out, 'results',
                                                                               os.path.splitext(name)[0]), 'jpg', 75)
        seconds.append(time.perf_counter() - start)
    return seconds


def same_files(first: str, second: str) -> bool:
    names = sorted(os.path.relpath(os.path.join(parent, name), first)
                   for parent, _, files in os.walk(first) for name in files)
    return names == sorted(os.path.relpath(os.path.join(parent, name), second)
                           for parent, _, files in os.walk(second) for name in files) and all(
        open(os.path.join(first, name), 'rb').read() == open(os.path.join(second, name), 'rb').read()
        for name in names)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.photo):
        raise UserError(f'--photo {args.photo}: no such file')
    threads = set_inference_threads()
    env = describe_environment(torch.device('cpu'), threads)
    load_start = os.getloadavg()
    times = {'script': [], 'api': []}
    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights
        if not weights:
            weights = os.path.join(folder, 'sparnethd.pth')
            torch.save(random_generator(RELEASED_MODELS[DEFAULT_PHOTO_MODEL].spec).state_dict(), weights)
        photos = os.path.join(folder, 'photos')
        os.makedirs(photos)
        ext = os.path.splitext(args.photo)[1]
        for index in range(args.count):
            shutil.copyfile(args.photo, os.path.join(photos, f'photo_{index}{ext}'))
        with PhotoRestorer(weights, detector=args.detector, device='cpu') as restorer:
            for repeat in range(args.repeats):
                outs = {way: os.path.join(folder, f'{way}_{repeat}') for way in times}
                times['script'] += script_seconds(photos, weights, args.detector, outs['script'])
                times['api'] += api_seconds(restorer, photos, outs['api'])
                identical = same_files(os.path.join(outs['script'], 'results'), os.path.join(outs['api'], 'results'))
                print(f'repeat {repeat + 1}: the same files both ways: {identical}', flush=True)
    print('| way | seconds per photo (median) | mean | photos |\n|---|---:|---:|---:|')
    for way, label in (('script', 'test_enhance_single_unalign.py'), ('api', '`PhotoRestorer.restore` + save')):
        print(f'| {label} | {statistics.median(times[way]):.2f} | {statistics.mean(times[way]):.2f} | '
              f'{len(times[way])} |')
    print(environment_line(env, load_start, os.getloadavg()))
    return 0


if __name__ == '__main__':
    run(main)
