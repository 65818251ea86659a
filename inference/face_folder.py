"""Super-resolving every face image below --dataroot (test.py), the network between loaders and writers.

Outputs keep their relative names under --save_as_dir. Unreadable inputs are reported and
skipped; the run ends with a summary and exits non-zero when any image failed. Loader processes
decode the next batches and writer threads encode the last ones while the network runs. Under
torchrun each process takes its share of the inputs (inference/sharding.py); --skip_existing and
--report make a run resumable (inference/report.py).
"""
import argparse
import logging
import os
import time

from data import create_dataset, create_test_dataloader
from inference import sharding
from inference.report import check_report_file
from models.enhancer import NON_FINITE_OUTPUT
from options.pipelines import face_enhancer
from utils.cli import UserError, print_path_lists
from utils.devices import set_inference_threads
from utils.image_io import is_image_file, output_name, save_rgb
from utils.output_plan import OutputPlan
from utils.progress import logging_redirect, progress
from utils.tensor_image import tensor_to_uint8
from utils.write_pool import WritePool

log = logging.getLogger('test')


def output_dir(opt: argparse.Namespace) -> str:
    return opt.save_as_dir or os.path.join(opt.results_dir, opt.name, f'{opt.phase}_{opt.epoch}')


def output_flag(opt: argparse.Namespace) -> str:
    return '--save_as_dir' if opt.save_as_dir else 'the output folder (<results_dir>/<name>/<phase>_<epoch>)'


class OutputWriter:
    """Saves one output (on a writer thread) and records its outcome."""

    def __init__(self, opt, save_dir, run_log):
        self.opt = opt
        self.save_dir = save_dir
        self.run_log = run_log

    def __call__(self, image, rel_path, seconds):
        start = time.perf_counter()
        input_path = os.path.join(self.opt.dataroot, rel_path)
        output_path = os.path.join(self.save_dir, output_name(rel_path))
        try:
            save_rgb(image, output_path, self.opt.jpeg_quality)
        except (OSError, ValueError) as err:
            message = f'{output_path}: could not write the result ({err})'
            log.error(message)
            self.run_log.record(input_path, 'failed', output_path, message, seconds + time.perf_counter() - start)
            return
        self.run_log.record(input_path, 'done', output_path, seconds=seconds + time.perf_counter() - start)


def super_resolve_inputs(opt, shard, dataset, enhancer, run):
    """Super-resolve this process's inputs, the network running while other processes load and threads write."""
    save_dir = output_dir(opt)
    jobs = run.pending([(os.path.join(opt.dataroot, rel_path), os.path.join(save_dir, output_name(rel_path)), rel_path)
                        for rel_path in dataset.paths])
    dataset.paths = [rel_path for _, _, rel_path in jobs]
    writer = OutputWriter(opt, save_dir, run.log)
    label = 'test' if not shard.distributed else f'test (process {shard.rank} of {shard.world_size})'
    with WritePool(opt.write_threads, max_pending=2 * opt.batch_size) as pool, \
            progress(total=len(dataset.paths), desc=label, unit='image', disable=not shard.is_main) as bar:
        for batch in create_test_dataloader(dataset, opt):
            bar.update(len(batch['LR_paths']) + len(batch['errors']))
            for rel_path, message in batch['errors']:
                log.error('%s (skipped)', message)
                run.log.record(os.path.join(opt.dataroot, rel_path), 'failed', error=message)
            if batch['LR'] is None:
                continue
            start = time.perf_counter()
            output, finites = enhancer.run(batch['LR'])
            outputs = tensor_to_uint8(output, opt.round_output)
            network_share = (time.perf_counter() - start) / len(outputs)
            for rel_path, image, finite, load_seconds in zip(batch['LR_paths'], outputs, finites, batch['seconds']):
                if finite:
                    pool.submit(writer, image, rel_path, load_seconds + network_share)
                else:
                    input_path = os.path.join(opt.dataroot, rel_path)
                    log.error('%s: %s; nothing written', input_path, NON_FINITE_OUTPUT)
                    run.log.record(input_path, 'failed', error=NON_FINITE_OUTPUT)


def output_plan(opt: argparse.Namespace, rel_paths: list[str]) -> OutputPlan:
    """What a test.py run reads and writes: every input's output, apart from the inputs and from each other."""
    plan = OutputPlan()
    plan.reads_folder('--dataroot', opt.dataroot, is_image_file)
    plan.reads('--pretrain_model_path', opt.pretrain_model_path)
    plan.reads('--onnx_model', opt.onnx_model)
    plan.writes_folder(output_flag(opt), output_dir(opt))
    plan.writes_files((os.path.join(opt.dataroot, rel_path), os.path.join(output_dir(opt), output_name(rel_path)))
                      for rel_path in rel_paths)
    plan.writes_file('--report', opt.report)
    return plan


def test_share(opt, shard):
    """Super-resolve the images of this process (all of them, but under torchrun); returns its exit code."""
    set_inference_threads(shard.cpu_threads())
    opt.num_threads = min(opt.num_threads, shard.cpu_threads() or opt.num_threads)
    dataset = create_dataset(opt)
    plan = output_plan(opt, dataset.paths)
    plan.check()
    check_report_file(opt.report)
    with plan.claimed(lock=shard.is_main):
        enhancer = face_enhancer(opt)  # before any output: wrong weights write nothing
        run = sharding.ShardedRun(shard, dataset.paths, f'--dataroot {opt.dataroot}', opt.report, opt.skip_existing)
        with logging_redirect():
            if shard.is_main:
                for rel_path in dataset.non_images:
                    log.warning('skipped %s: not an image file', os.path.join(opt.dataroot, rel_path))
            super_resolve_inputs(opt, shard, dataset, enhancer, run)
    totals = run.finish(None, opt.dist_timeout)
    if totals is None:
        return 1
    counts, listed, _ = totals
    if shard.is_main:
        print(f'{counts["done"]} done, {len(dataset.non_images)} skipped (not images), {counts["failed"]} failed'
              f'{run.summary_suffix(counts, "output exists")}; results in {output_dir(opt)}')
        print_path_lists((('failed', listed['failed']),))
    return 1 if counts['failed'] else 0



def test_folder(opt: argparse.Namespace) -> int:
    """Exit code of a test.py run of `opt`: folders checked before any work, then every image (each process its
    share under torchrun)."""
    if opt.other_face_model:
        raise UserError(f'--face_model {opt.face_model}: test.py runs SPARNet networks; run other projects\' face '
                        'restorers on whole photos with test_enhance_single_unalign.py')
    return sharding.run_sharded(opt, test_share)
