"""End-to-end speed: test.py over a folder of faces and the whole-photo script over a folder of
photos, against the published code's loops as users ran them (`baselines/published.py`).

    python -m scripts.benchmark_end_to_end --faces /data/lfw,/data/utk --count 1000 --precisions fp32,bf16
    python -m scripts.benchmark_end_to_end --photos /data/photos --photo_count 6 --precisions fp32,bf16
    python -m scripts.benchmark_end_to_end --video samples/astronaut.mp4 --precisions fp32,bf16

Faces: the first --count images of the --faces folders, each resized to 128x128 and reduced to a
16x16 LR face with PIL bicubic (the Helen test-set form), saved as PNG. Then, in turns (so load
from other processes hits all alike), repeated --repeats times:
- `published`: the published test.py loop: batch 1, one image at a time (PIL read and bicubic
  resize, tensor, the plain module in eval mode under no_grad, `(y + 1) / 2 * 255` clipped and
  truncated, PIL save);
- `network <precision>`: the fast path alone on the preloaded batches of --batch_size (the
  network-only rate);
- `test.py <precision>`: test.py's run (`inference.face_folder`) over the folder, model loading
  included, at its defaults.
Then the outputs' quality: PSNR / SSIM against the 128x128 HR faces (the published protocol) of
the published loop and of test.py at each precision, and how far test.py's outputs at each
precision are from the published loop's (fp32): identical pixel values, values more than one
8-bit level apart. With trained --weights this is what bf16 costs.
Photos: the published whole-photo script's steps in one process (dlib CNN detection on the
photo upsampled once, five landmarks, scikit-image similarity warp order 3, one face at a time
through the plain module, scikit-image warp back with the 5x5-blurred mask, JPEG outputs)
against the whole-photo script's run (`inference.whole_photos`) over the folder.
Video: those published steps on every frame of --video (`published_video_loop`: frames extracted as JPEG,
the results encoded back) against the whole-photo script's run on the video (`video.enhance`).
Weights: random ones (the same for every path) unless --weights gives the released file. int8 is quantized before
the timed runs (once, cached beside the weights), as a user's first run does once.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import os
import statistics
import tempfile
import time

import av
import numpy as np
import torch
from PIL import Image

from api import FaceEnhancer
from api.choices import DEFAULT_BATCH_SIZE
from archs.folded_sparnet import prepare_inference_net
from archs.generator_spec import random_generator
from baselines.environment import check_baseline_environment, describe_environment, environment_line
from baselines.published import published_face_loop, published_photo_loop, published_video_loop
from data.base_dataset import resize_square
from faces.align import FACE_SIZE
from inference.face_folder import test_folder
from inference.whole_photos import enhance_whole_photos
from metrics import psnr_ssim
from options.test_options import TestOptions
from utils.cli import ArgumentParser, UserError, positive_int, run
from utils.devices import set_inference_threads
from utils.image_io import list_images, read_rgb
from weights.generator import load_generator_weights
from weights.released import DEFAULT_PHOTO_MODEL, RELEASED_MODELS

SPECS = {'sparnet': RELEASED_MODELS['sparnet'].spec, 'sparnethd': RELEASED_MODELS[DEFAULT_PHOTO_MODEL].spec}


def make_lr_faces(folders, count, dest, hr_dest):
    """The first `count` images of `folders` as 16x16 LR PNG faces in `dest` (the 128x128 centre
    square, PIL bicubic down), that square in `hr_dest`."""
    sources = [os.path.join(folder, name) for folder in folders for name in list_images(folder)][:count]
    if len(sources) < count:
        raise UserError(f'--faces: found {len(sources)} images, fewer than --count {count}')
    os.makedirs(dest, exist_ok=True)
    os.makedirs(hr_dest, exist_ok=True)
    for index, path in enumerate(sources):
        hr = resize_square(read_rgb(path), 128)
        hr.save(os.path.join(hr_dest, f'{index:05d}.png'))
        hr.resize((16, 16), Image.BICUBIC).save(os.path.join(dest, f'{index:05d}.png'))
    return sorted(os.listdir(dest))


def network_only(fast, lr_dir, names, batch_size, load_size=128):
    """Seconds the fast path alone takes over the faces, preloaded in batches of `batch_size`."""
    images = [np.asarray(Image.open(os.path.join(lr_dir, name)).convert('RGB').resize((load_size, load_size),
                                                                                      Image.BICUBIC))
              for name in names]
    batches = [torch.from_numpy(np.stack(images[i:i + batch_size])).permute(0, 3, 1, 2).float() / 127.5 - 1
               for i in range(0, len(images), batch_size)]
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            fast(batch).clamp_(-1, 1)
    return time.perf_counter() - start


def read_uint8(folder, name):
    return np.asarray(Image.open(os.path.join(folder, name)).convert('RGB'))


def level_difference(dir_a, dir_b, names):
    """(share of identical pixel values, share more than one 8-bit level apart, largest difference)
    between the same images in two output folders."""
    same, beyond_one, total, largest = 0, 0, 0, 0
    for name in names:
        diff = np.abs(read_uint8(dir_a, name).astype(np.int16) - read_uint8(dir_b, name))
        same, beyond_one = same + int((diff == 0).sum()), beyond_one + int((diff > 1).sum())
        total, largest = total + diff.size, max(largest, int(diff.max()))
    return same / total, beyond_one / total, largest


def mean_scores(result_dir, hr_dir, names):
    """(mean PSNR, mean SSIM) of the outputs against the HR faces, the published protocol (Y as uint8)."""
    pairs = [(read_uint8(result_dir, name), read_uint8(hr_dir, name)) for name in names]
    return (statistics.fmean(psnr_ssim.psnr(result, hr) for result, hr in pairs),
            statistics.fmean(psnr_ssim.ssim(result, hr) for result, hr in pairs))


def quality_report(folder, hr_dir, names, precisions):
    """Lines: PSNR / SSIM of the published loop's and test.py's outputs, and test.py's against the published loop's."""
    outputs = {'published loop': os.path.join(folder, 'published_0'),
               **{f'test.py {p}': os.path.join(folder, f'test.py_{p}_0') for p in precisions}}
    lines = [f'{variant}: PSNR {psnr:.4f} dB, SSIM {ssim:.5f} against the HR faces'
             for variant, (psnr, ssim) in ((variant, mean_scores(out, hr_dir, names))
                                           for variant, out in outputs.items())]
    for precision in precisions:
        same, beyond_one, largest = level_difference(outputs['published loop'], outputs[f'test.py {precision}'], names)
        lines.append(f'test.py {precision} vs published outputs: {100 * same:.2f} % of the pixel values identical, '
                     f'{100 * beyond_one:.4f} % more than one level apart, at most {largest} levels apart')
    return lines


def faces_benchmark(args, net, weights_path, folder):
    """{variant: [seconds per run]} over the LR faces, and the output differences from the published loop."""
    lr_dir, hr_dir = os.path.join(folder, 'lr'), os.path.join(folder, 'hr')
    names = make_lr_faces(args.face_folders, args.count, lr_dir, hr_dir)
    fast = {p: fast_path(net, weights_path, p, 128, args.calibration) for p in args.precision_list}
    flags = ['--gpus', '0', '--dataroot', lr_dir, '--pretrain_model_path', weights_path, *calibration_flags(args)]
    variants = {'published': lambda out: published_face_loop(net, lr_dir, names, out)}
    for precision in args.precision_list:
        batch_size = args.batch_size or DEFAULT_BATCH_SIZE['cpu', precision]
        variants[f'network {precision}'] = (lambda out, p=precision, b=batch_size:
                                            network_only(fast[p], lr_dir, names, b))
        variants[f'test.py {precision}'] = lambda out, p=precision: test_folder(TestOptions().parse(
            [*flags, '--save_as_dir', out, '--precision', p, *args.test_flags.split()]))
    times = run_in_turns(variants, args.repeats, folder, names)
    print('\n'.join(quality_report(folder, hr_dir, names, args.precision_list)))
    return times


def fast_path(net, weights_path, precision, size, calibration):
    """The network the runs use at `precision`: the fast path, or int8's quantized model (quantized now, before any
    timing, and cached beside the weights for the runs)."""
    if precision == 'int8':
        return FaceEnhancer(weights_path, device='cpu', precision='int8', load_size=size,
                            calibration=calibration).enhancer.net
    return prepare_inference_net(net, 'cpu', precision)


def calibration_flags(args):
    return ['--calibration', args.calibration] if args.calibration else []


def run_in_turns(variants, repeats, folder, names, unit='images'):
    times = {name: [] for name in variants}
    order = list(variants)
    for repeat in range(repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            out = os.path.join(folder, f'{name.replace(" ", "_")}_{repeat}')
            start = time.perf_counter()
            result = variants[name](out)
            seconds = result if name.startswith('network') else time.perf_counter() - start
            times[name].append(seconds)
            print(f'  {name}: {seconds:.1f} s ({len(names) / seconds:.2f} {unit}/s), load average '
                  f'{os.getloadavg()[0]:.2f}', flush=True)
    return times


def photos_benchmark(args, net, weights_path, folder):
    photos = [os.path.join(args.photos, name) for name in list_images(args.photos)][:args.photo_count]
    photo_dir = os.path.join(folder, 'photos')
    os.makedirs(photo_dir)
    for path in photos:  # a flat folder of the chosen photos, for the whole-photo script
        os.symlink(os.path.abspath(path), os.path.join(photo_dir, os.path.basename(path)))
    flags = ['--gpus', '0', '--test_img_path', photo_dir, '--pretrain_model_path', weights_path,
             *calibration_flags(args)]
    if 'int8' in args.precision_list:
        fast_path(net, weights_path, 'int8', FACE_SIZE, args.calibration)
    variants = {'published photos': lambda out: published_photo_loop(net, photos, out)}
    for precision in args.precision_list:
        variants[f'photo script {precision}'] = lambda out, p=precision: enhance_whole_photos(TestOptions().parse(
            [*flags, '--results_dir', out, '--precision', p, *args.photo_flags.split()]))
    return run_in_turns(variants, args.repeats, folder, photos)


def videos_benchmark(args, net, weights_path, folder):
    """{variant: [seconds per run]} over the frames of --video, and their number."""
    with av.open(args.video) as container:
        frames = sum(1 for _ in container.decode(video=0))
    flags = ['--gpus', '0', '--test_img_path', args.video, '--pretrain_model_path', weights_path,
             *calibration_flags(args)]
    if 'int8' in args.precision_list:
        fast_path(net, weights_path, 'int8', FACE_SIZE, args.calibration)
    variants = {'published frames': lambda out: published_video_loop(net, args.video, os.path.join(out, 'out.mp4'),
                                                                      out)}
    for precision in args.precision_list:
        variants[f'video {precision}'] = lambda out, p=precision: enhance_whole_photos(TestOptions().parse(
            [*flags, '--results_dir', out, '--precision', p, *args.photo_flags.split()]))
    return run_in_turns(variants, args.repeats, folder, range(frames), 'frames'), frames


def table(times, count, unit, baseline, network_rows=()):
    lines = [f'| run | {unit} | s | {unit} / s | vs {baseline} | share of the network-only rate |',
             '|---|---:|---:|---:|---:|---:|']
    base = statistics.median(times[baseline])
    for name, runs in times.items():
        seconds = statistics.median(runs)
        network = next((f'network {p}' for p in network_rows if name == f'test.py {p}'), None)
        share = f'{100 * statistics.median(times[network]) / seconds:.0f} %' if network in times else '-'
        lines.append(f'| {name} | {count} | {seconds:.1f} | {count / seconds:.2f} | {base / seconds:.2f}x | {share} |')
    return '\n'.join(lines)


def build_parser():
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--faces', default='', help='comma-separated folders of face images (HR, any size)')
    parser.add_argument('--count', type=positive_int, default=1000, help='faces to make and run (default: 1000)')
    parser.add_argument('--photos', default='', help='folder of photos with faces, for the whole-photo pipeline')
    parser.add_argument('--photo_count', type=positive_int, default=6, help='photos to run (default: the first 6)')
    parser.add_argument('--video', default='',
                        help='a video with faces (e.g. from scripts.make_sample_video), for the video pipeline')
    parser.add_argument('--precisions', default='fp32', help='comma-separated among fp32,bf16,int8 (default: fp32)')
    parser.add_argument('--calibration', default='', help='int8: calibrate on the faces of this folder (default: the '
                        'bundled faces)')
    parser.add_argument('--batch_size', type=positive_int, default=None,
                        help="network-only batch (default: test.py's for the precision)")
    parser.add_argument('--repeats', type=positive_int, default=1, help='runs of each variant, in turns (default: 1)')
    parser.add_argument('--test_flags', default='', help='extra flags for test.py, e.g. "--batch_size 8"')
    parser.add_argument('--photo_flags', default='--detector cnn',
                        help='extra flags for the whole-photo script, of photos and videos (default: '
                             '"--detector cnn", as published)')
    parser.add_argument('--weights', action='append', default=[], metavar='MODEL=PATH',
                        help='released weights, e.g. sparnet=pretrain_models/SPARNet-V16-S4-epoch20.pth')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='intra-op threads (default: one per usable core)')
    return parser


def network_and_weights(model, weights, folder):
    """The plain module in eval mode and a released-format file of its weights (random unless given)."""
    spec = SPECS[model]
    if model in weights:
        return load_generator_weights(spec.build(), weights[model], spec).eval(), weights[model]
    net = random_generator(spec)
    path = os.path.join(folder, f'{model}.pth')
    torch.save(net.state_dict(), path)
    return net, path


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.face_folders = [f for f in args.faces.split(',') if f]
    args.precision_list = [p for p in args.precisions.split(',') if p]
    if not args.face_folders and not args.photos and not args.video:
        raise UserError('give --faces, --photos and/or --video')
    check_baseline_environment()
    weights = dict(item.split('=', 1) for item in args.weights)
    threads = set_inference_threads(args.threads)
    env = describe_environment(torch.device('cpu'), threads)
    load_start = os.getloadavg()
    print(f'{threads} threads, torch {torch.__version__}, load average {load_start[0]:.2f}')
    with tempfile.TemporaryDirectory() as folder:
        if args.face_folders:
            net, path = network_and_weights('sparnet', weights, folder)
            times = faces_benchmark(args, net, path, folder)
            print(table(times, args.count, 'faces', 'published', args.precision_list))
        if args.photos:
            net, path = network_and_weights('sparnethd', weights, folder)
            times = photos_benchmark(args, net, path, folder)
            print(table(times, args.photo_count, 'photos', 'published photos'))
        if args.video:
            net, path = network_and_weights('sparnethd', weights, folder)
            times, frames = videos_benchmark(args, net, path, folder)
            print(table(times, frames, 'frames', 'published frames'))
    print(environment_line(env, load_start, os.getloadavg()))
    return 0


if __name__ == '__main__':
    run(main)
