"""Inference and training-step speed of SPARNet, SPARNet-Light and SPARNetHD on each inference path.

    python -m scripts.benchmark --json benchmark.json
    python -m scripts.benchmark --models sparnethd_attn2d --paths reference,fast,bf16 --repeats 1

Paths: `reference` (the plain module), `fast` (the default fp32 path), `bf16` / `fp16` (reduced
precision, where the device has it natively), `onnx` (ONNX Runtime on the exported graph), `int8` (ONNX Runtime on
the quantized graph, `--precision int8`, bundled calibration; its share is of the int8 GEMM peak). For each
model, batch size and path: seconds per batch (median of --repeats runs, the paths interleaved so that
load from other processes hits them alike), images/s, GFLOP/s counted on the reference network's
convolutions (the same count for every path), its share of the peak, the speed-up over the published
test loop as users ran it (batch 1, one image at a time, PIL read, the plain module, PIL save: the
baseline users know) and over `reference` (the plain module at the same batch size),
the peak memory a forward adds to the process, and the output's difference from `reference` on a
real face (skimage's astronaut). Then a SPARNet training step (batch 8, L1, Adam): plain vs fast.
Without --weights the networks get random weights (batch-norm statistics randomised, spectral norm
converged), so the PSNRs only show the rounding of each path; pass the released files for real ones.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import copy
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from skimage import data as skimage_data
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from archs.folded_sparnet import prepare_inference_net
from archs.generator_spec import random_generator
from baselines.environment import check_baseline_environment, describe_environment, environment_line
from baselines.published import published_face_loop
from faces.calibration import CalibrationFaces
from models.fast_training import channels_last, fused_adam, prepare_training_net
from models.int8 import needs_reduced_range, quantize_generator
from models.onnx_generator import OnnxGenerator, export_onnx
from utils.atomic import atomic_write
from utils.cli import (
    ArgumentParser,
    UserError,
    name_list,
    non_negative_int,
    output_file,
    positive_float,
    positive_int,
    run,
)
from utils.devices import check_precision, set_inference_threads
from utils.output_plan import OutputPlan
from utils.peak_memory import PeakMemory
from utils.progress import progress
from weights.generator import load_generator_weights
from weights.released import RELEASED_MODELS

DEFAULT_MODELS = ('sparnet', 'sparnet_light_attn3d', 'sparnethd_attn2d')  # of RELEASED_MODELS
DEFAULT_BATCHES = {'sparnet': (1, 16), 'sparnethd': (1, 2)}  # by network
PATHS = ('reference', 'fast', 'bf16', 'fp16', 'onnx', 'int8')
TRAIN_BATCH = 8


def build_parser():
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', default=','.join(DEFAULT_MODELS),
                        help=f"comma-separated released models among {','.join(RELEASED_MODELS)}")
    parser.add_argument('--paths', default='reference,fast,bf16,onnx', help=f"comma-separated among {','.join(PATHS)}")
    parser.add_argument('--batch_sizes', default=None,
                        help='comma-separated batch sizes for every model (default: 1,16; 1,2 for sparnethd)')
    parser.add_argument('--repeats', type=positive_int, default=2,
                        help='timed runs per path after a warm-up run (default: 2)')
    parser.add_argument('--train_steps', type=non_negative_int, default=3,
                        help='timed training steps per path after a warm-up step (default: 3; 0 skips training)')
    parser.add_argument('--weights', action='append', default=[], metavar='MODEL=PATH',
                        help='real weights for a model, e.g. sparnet=pretrain_models/SPARNet-V16-S4-epoch20.pth')
    parser.add_argument('--released', action='store_true',
                        help='use the released weights of every model (from the weights cache, downloaded on first '
                             'use) instead of random ones')
    parser.add_argument('--peak_gflops', type=positive_float, default=None,
                        help='fp32 peak of the device for the share column (default: measured with a GEMM)')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='intra-op threads (default: one per usable core)')
    parser.add_argument('--gpus', type=int, default=0, help='run on a GPU when 1 (default: 0, the CPU)')
    parser.add_argument('--json', type=output_file, default=None, help='write all results here')
    return parser


def timed(fn, x, device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        output = fn(x)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start, output


def gemm_peak_gflops(device, dtype):
    """Throughput of a 4096^2 matrix product: what the device's BLAS reaches, for the share column."""
    a = torch.randn(4096, 4096, device=device, dtype=dtype)
    b = torch.randn(4096, 4096, device=device, dtype=dtype)
    best = float('inf')
    for _ in range(4):
        seconds, _ = timed(lambda m: m @ b, a, device)
        best = min(best, seconds)
    return 2 * 4096 ** 3 / best / 1e9


def int8_gemm_peak_gops(threads):
    """Throughput of a 4096^2 uint8 x int8 matrix product in ONNX Runtime (MatMulInteger, int32 sums): the int8
    counterpart of `gemm_peak_gflops`, in the engine that runs --precision int8."""
    import onnxruntime as ort
    from onnx import TensorProto, helper
    size = 4096
    rng = np.random.default_rng(0)
    weight = helper.make_tensor('b', TensorProto.INT8, (size, size),
                                rng.integers(-64, 64, (size, size), np.int8).tobytes(), raw=True)
    graph = helper.make_graph([helper.make_node('MatMulInteger', ['a', 'b'], ['c'])], 'gemm',
                              [helper.make_tensor_value_info('a', TensorProto.UINT8, (size, size))],
                              [helper.make_tensor_value_info('c', TensorProto.INT32, (size, size))], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=['CPUExecutionProvider'])
    a = rng.integers(0, 255, (size, size), np.uint8)
    best = float('inf')
    for _ in range(4):
        start = time.perf_counter()
        session.run(None, {'a': a})
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def runs(device, precision):
    try:
        check_precision(device, precision)
        return True
    except ValueError:
        return False


def face(size):
    """The astronaut's face, size x size RGB uint8 (a real face shipped with scikit-image)."""
    return np.asarray(Image.fromarray(skimage_data.astronaut()[10:266, 125:381]).resize((size, size), Image.BICUBIC))


def to_input(image):
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(127.5).sub(1)


def sparnet_pair(image):
    """(LR, HR) SPARNet pair: 128 HR, LR = bicubic down to 16 and back to 128, as in training."""
    small = Image.fromarray(image).resize((16, 16), Image.BICUBIC).resize((128, 128), Image.BICUBIC)
    return to_input(np.asarray(small)), to_input(image)


def load_net(name, weights):
    spec = RELEASED_MODELS[name].spec
    if name in weights:
        return load_generator_weights(spec.build(), weights[name], spec), 'released'
    return random_generator(spec), 'random'


def conv_flops(spec, size):
    """FLOPs (2 x multiply-adds) of one image through the reference network, counted on the meta device."""
    with torch.device('meta'):
        net = spec.build().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.empty(1, 3, size, size, device='meta'))
    return counter.get_total_flops()


def psnr(output, reference):
    """PSNR (dB) between two [-1, 1] outputs mapped to 8-bit levels, as images are saved."""
    def to_levels(t):
        return (t.clamp(-1, 1) + 1) * 127.5
    mse = (to_levels(output) - to_levels(reference)).pow(2).mean().item()
    return float('inf') if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def build_paths(names, net, device, size, folder, model):
    """{path name: callable} for the paths this device can run; prints why the others are skipped."""
    paths = {}
    for name in names:
        try:
            if name == 'reference':
                paths[name] = net.to(device).eval()
            elif name == 'fast':
                paths[name] = prepare_inference_net(net, device)
            elif name in ('bf16', 'fp16'):
                paths[name] = prepare_inference_net(net, device, name)
            elif name == 'int8' and device.type != 'cpu':
                print(f'  {name}: skipped (int8 runs on the CPU)')
            elif name == 'int8':
                start = time.perf_counter()
                path = quantize_generator(net.cpu(), os.path.join(folder, 'int8.onnx'), size,
                                          CalibrationFaces().inputs(model, size), needs_reduced_range())
                net.to(device)
                print(f'  quantized to int8 in {time.perf_counter() - start:.1f} s (bundled calibration faces)')
                paths[name] = OnnxGenerator(path, 'cpu', torch.get_num_threads())
            elif name == 'onnx':
                start = time.perf_counter()
                path = export_onnx(net.cpu(), os.path.join(folder, 'model.onnx'), size)
                net.to(device)
                print(f'  exported ONNX in {time.perf_counter() - start:.1f} s')
                paths[name] = OnnxGenerator(path, device, torch.get_num_threads())
        except (ValueError, UserError) as err:
            print(f'  {name}: skipped ({err})')
    return paths


def published_seconds_per_image(net, spec, image, count, folder):
    """Seconds per image of the published test loop (CPU) on `count` copies of the face, input file to output file."""
    size = image.shape[0]
    lr = Image.fromarray(image).resize((size // 8, size // 8), Image.BICUBIC) if spec.model == 'sparnet' else \
        Image.fromarray(image)
    lr_dir, names = os.path.join(folder, 'published_lr'), [f'{index}.png' for index in range(count)]
    os.makedirs(lr_dir)
    for name in names:
        lr.save(os.path.join(lr_dir, name))
    published_face_loop(net, lr_dir, names[:1], os.path.join(folder, 'published_warm_up'), size)
    start = time.perf_counter()
    published_face_loop(net, lr_dir, names, os.path.join(folder, 'published_out'), size)
    return (time.perf_counter() - start) / count


def benchmark_model(name, args, device, weights, peaks):
    spec, size = RELEASED_MODELS[name].spec, RELEASED_MODELS[name].load_size
    default_batches = DEFAULT_BATCHES[spec.model]
    net, weight_kind = load_net(name, weights)
    flops = conv_flops(spec, size)
    image = face(size)
    single = sparnet_pair(image)[0] if spec.model == 'sparnet' else to_input(image)
    batches = [int(b) for b in args.batch_sizes.split(',')] if args.batch_sizes else default_batches
    print(f'{name}: {flops / 1e9:.1f} GFLOP per image, {weight_kind} weights')
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = build_paths(args.path_list, net, device, size, folder, spec.model)
        for batch in batches:
            x = single.expand(batch, -1, -1, -1).contiguous().to(device)
            results = {path: {'times': []} for path in paths}
            for path, fn in paths.items():  # warm-up run: memory and outputs
                with PeakMemory(device) as memory:
                    _, output = timed(fn, x, device)
                results[path].update(peak_mb=memory.peak_mb, output=output.float().cpu())
            steps = [(r, path) for r in range(args.repeats) for path in paths]
            for _, path in progress(steps, desc=f'{name} batch {batch}', unit='run', leave=False):
                results[path]['times'].append(timed(paths[path], x, device)[0])
            rows += summarize(name, batch, flops, weight_kind, results, peaks)
        if device.type == 'cpu':
            published = published_seconds_per_image(net.cpu().eval(), spec, image, args.repeats, folder)
            for row in rows:
                row['vs_published'] = published / (row['seconds_per_batch'] / row['batch'])
            print(f'  published test loop: {published:.3f} s per image')
    return rows


def summarize(name, batch, flops, weight_kind, results, peaks):
    reference = results.get('reference')
    reference_seconds = statistics.median(reference['times']) if reference and reference['times'] else None
    rows = []
    for path, result in results.items():
        seconds = statistics.median(result['times']) if result['times'] else float('nan')
        gflops = flops * batch / seconds / 1e9
        peak = peaks[path if path in ('bf16', 'fp16', 'int8') else 'fp32']
        row = {'model': name, 'batch': batch, 'path': path, 'weights': weight_kind,
               'seconds_per_batch': seconds, 'times': result['times'], 'images_per_second': batch / seconds,
               'gflop_per_image': flops / 1e9, 'gflops': gflops, 'peak_share': gflops / peak if peak else None,
               'speedup': reference_seconds / seconds if reference_seconds else None,
               'peak_memory_mb': result['peak_mb']}
        if reference is not None:
            out, ref = result['output'], reference['output']
            row['max_rel_diff'] = ((out - ref).abs().max() / ref.abs().max()).item()
            row['psnr_db'] = psnr(out, ref)
        rows.append(row)
    return rows


def training_benchmark(steps, device, threads_note):
    """SPARNet training steps (batch 8, L1, Adam 2e-4, betas 0.9/0.99): plain module vs fast path."""
    spec = RELEASED_MODELS['sparnet'].spec
    torch.manual_seed(0)
    plain = spec.build().to(device).train()
    fast = prepare_training_net(copy.deepcopy(plain))
    rng = np.random.default_rng(0)
    astronaut = skimage_data.astronaut()
    crops = []
    for _ in range(TRAIN_BATCH):
        top, left = rng.integers(0, 512 - 256, size=2)
        crop = np.asarray(Image.fromarray(astronaut[top:top + 256, left:left + 256]).resize((128, 128), Image.BICUBIC))
        crops.append(sparnet_pair(crop))
    lr = torch.stack([c[0] for c in crops]).to(device)
    hr = torch.stack([c[1] for c in crops]).to(device)
    setups = {'plain': (plain, torch.optim.Adam(plain.parameters(), 2e-4, betas=(0.9, 0.99)), lr, hr),
              'fast': (fast, fused_adam(fast.parameters(), 2e-4, (0.9, 0.99)), channels_last(lr), channels_last(hr))}
    times = {name: [] for name in setups}
    losses = {name: [] for name in setups}
    for step in progress(range(steps + 1), desc='training steps', unit='step', leave=False):
        for name, (model, optimizer, inputs, target) in setups.items():
            if device.type == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = F.l1_loss(model(inputs), target)
            loss.backward()
            optimizer.step()
            losses[name].append(loss.item())
            if device.type == 'cuda':
                torch.cuda.synchronize()
            if step > 0:
                times[name].append(time.perf_counter() - start)
    plain_seconds, fast_seconds = statistics.median(times['plain']), statistics.median(times['fast'])
    return {'batch': TRAIN_BATCH, 'steps': steps, 'seconds_per_step': {'plain': plain_seconds, 'fast': fast_seconds},
            'times': times, 'speedup': plain_seconds / fast_seconds, 'losses': losses,
            'first_step_rel_loss_diff': abs(losses['plain'][0] - losses['fast'][0]) / losses['plain'][0],
            'max_rel_loss_diff': max(abs(a - b) / abs(a) for a, b in zip(losses['plain'], losses['fast'])),
            'threads': threads_note}


def format_table(rows):
    lines = ['| model | batch | path | s / batch | images / s | GFLOP/s | % of peak | vs published | vs reference |'
             ' peak MB | max rel. diff | PSNR dB |',
             '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']

    def number(value, fmt):
        return '-' if value is None else format(value, fmt)
    for row in rows:
        diff = row.get('max_rel_diff') if row['path'] != 'reference' else None
        psnr_value = row.get('psnr_db') if row['path'] != 'reference' else None
        lines.append(f"| {row['model']} | {row['batch']} | {row['path']} | {row['seconds_per_batch']:.3f} | "
                     f"{row['images_per_second']:.2f} | {row['gflops']:.0f} | "
                     f"{number(row['peak_share'] and 100 * row['peak_share'], '.0f')} | "
                     f"{number(row.get('vs_published'), '.2f')} | "
                     f"{number(row['speedup'], '.2f')} | {number(row['peak_memory_mb'], '.0f')} | "
                     f"{number(diff, '.1e')} | {number(psnr_value, '.1f')} |")
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_baseline_environment()  # before --released downloads anything
    plan = OutputPlan()
    for item in args.weights:
        plan.reads('--weights', item.partition('=')[2])
    plan.writes_file('--json', args.json)
    plan.check()
    model_names = name_list(args.models, RELEASED_MODELS, '--models')
    args.path_list = name_list(args.paths, PATHS, '--paths')
    weights = {}
    for item in args.weights:
        model, _, path = item.partition('=')
        if model not in RELEASED_MODELS or not path:
            raise UserError(f"--weights: expected MODEL=PATH with MODEL among {','.join(RELEASED_MODELS)}, "
                            f"got {item!r}")
        weights[model] = path
    if args.released:
        weights.update({name: RELEASED_MODELS[name].remote.fetch() for name in model_names if name not in weights})
    device = torch.device('cuda' if args.gpus > 0 and torch.cuda.is_available() else 'cpu')
    threads = set_inference_threads(args.threads)
    env = describe_environment(device, threads)
    load_start = os.getloadavg()
    peaks = {'fp32': args.peak_gflops or gemm_peak_gflops(device, torch.float32)}
    for name, dtype in (('bf16', torch.bfloat16), ('fp16', torch.float16)):
        peaks[name] = gemm_peak_gflops(device, dtype) if name in args.path_list and runs(device, name) else None
    peaks['int8'] = int8_gemm_peak_gops(threads) if 'int8' in args.path_list and device.type == 'cpu' else None
    print(f"device {device}, {threads} threads, torch {torch.__version__}, load average {load_start[0]:.2f}; "
          f"peak GFLOP/s (int8: GOP/s): {', '.join(f'{k} {v:.0f}' for k, v in peaks.items() if v)}")
    rows = []
    for name in model_names:
        rows += benchmark_model(name, args, device, weights, peaks)
        print(format_table([row for row in rows if row['model'] == name]))
    training = training_benchmark(args.train_steps, device, threads) if args.train_steps > 0 else None
    load_end = os.getloadavg()
    print('\n' + format_table(rows))
    if training:
        seconds = training['seconds_per_step']
        print(f"\ntraining step, SPARNet batch {TRAIN_BATCH}: plain {seconds['plain']:.2f} s, "
              f"fast {seconds['fast']:.2f} s, speed-up {training['speedup']:.2f}; relative loss difference "
              f"{training['first_step_rel_loss_diff']:.1e} at the first step (same weights), at most "
              f"{training['max_rel_loss_diff']:.1e} over {training['steps'] + 1} steps")
    print(environment_line(env, load_start, load_end))
    if args.json:
        report = {'command': ' '.join(sys.argv), 'environment': env, 'peak_gflops': peaks,
                  'load_average': {'start': load_start, 'end': load_end},
                  'inference': rows, 'training': training}
        with plan.claimed(), atomic_write(args.json, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=1)
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    run(main)
