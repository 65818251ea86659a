"""Super-resolve every image below --dataroot with a SPARNet / SPARNetHD checkpoint.

Outputs keep their relative names under --save_as_dir. Unreadable inputs are reported and
skipped; the run ends with a summary and exits non-zero when any image failed.
"""
import logging
import os

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data import create_dataset, create_test_dataloader
from models import create_model
from options.test_options import TestOptions
from utils.cli import run
from utils.devices import set_inference_threads
from utils.image_io import save_rgb
from utils.tensor_image import tensor_to_uint8

log = logging.getLogger('test')


def output_dir(opt):
    return opt.save_as_dir or os.path.join(opt.results_dir, opt.name, f'test_{opt.epoch}')


def main(argv=None):
    opt = TestOptions().parse(argv)
    set_inference_threads()
    dataset = create_dataset(opt)
    model = create_model(opt).setup_inference()  # before any output: wrong weights write nothing
    save_dir = output_dir(opt)
    done, failed = 0, []
    with logging_redirect_tqdm():
        for rel_path in dataset.non_images:
            log.warning('skipped %s: not an image file', os.path.join(opt.dataroot, rel_path))
        for batch in tqdm(create_test_dataloader(dataset, opt), desc='test', unit='batch'):
            for rel_path, message in batch['errors']:
                log.error('%s (skipped)', message)
                failed.append(rel_path)
            if batch['LR'] is None:
                continue
            model.set_input(batch)
            outputs = tensor_to_uint8(model.test(), opt.round_output)
            for rel_path, image in zip(batch['LR_paths'], outputs):
                try:
                    save_rgb(image, os.path.join(save_dir, rel_path), opt.jpeg_quality)
                    done += 1
                except (OSError, ValueError) as err:
                    log.error('%s: could not write the result (%s)', os.path.join(save_dir, rel_path), err)
                    failed.append(rel_path)
    print(f'{done} done, {len(dataset.non_images)} skipped (not images), {len(failed)} failed; '
          f'results in {save_dir}')
    return 1 if failed else 0


if __name__ == '__main__':
    run(main)
