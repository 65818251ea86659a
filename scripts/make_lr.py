"""HR folder -> LR test folder with PIL's bicubic filter, the form of the Helen test set.

    python -m scripts.make_lr --input_dir HR --output_dir LR [--scale 8] [--upsampled_dir LR_up]

128x128 HR faces give 16x16 LR faces (--scale 8), under the same relative names. test.py
enlarges LR inputs to --load_size itself (PIL bicubic), so the 16x16 folder is all it needs;
--upsampled_dir also writes those LR faces enlarged back to the HR size, the 128x128 images
SPARNet actually consumes. Exit code 1 when an image failed, 2 on bad input.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import logging
import os

import numpy as np
from PIL import Image

from utils.cli import ArgumentParser, input_path, jpeg_quality, output_folder, positive_float, run
from utils.image_io import ImageReadError, find_images, is_image_file, output_name, read_rgb, save_rgb
from utils.output_plan import OutputPlan
from utils.progress import logging_redirect, progress

log = logging.getLogger('make_lr')


def downscaled_size(width, height, scale):
    """LR size: each side divided by `scale`, rounded, at least 1 pixel."""
    return max(1, round(width / scale)), max(1, round(height / scale))


def make_lr(hr, scale):
    """The HR PIL image shrunk `scale` times with PIL's bicubic filter."""
    return hr.resize(downscaled_size(*hr.size, scale), Image.BICUBIC)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--input_dir', required=True, type=input_path, help='folder of HR images (subfolders too)')
    parser.add_argument('--output_dir', required=True, type=output_folder,
                        help='LR images are written here under the same names')
    parser.add_argument('--scale', type=positive_float, default=8, help='downscaling factor (8: 128x128 -> 16x16)')
    parser.add_argument('--upsampled_dir', type=output_folder, default='',
                        help='also write the LR images enlarged back to the HR size here (bicubic)')
    parser.add_argument('--ext', default='', choices=('', 'png', 'jpg'),
                        help='format of the outputs (default: that of each input, PNG for GIF; png keeps LR '
                             'lossless)')
    parser.add_argument('--jpeg_quality', type=jpeg_quality, default=95, help='quality of JPEG outputs')
    args = parser.parse_args(argv)
    images = find_images(args.input_dir, '--input_dir')
    plan = OutputPlan()
    plan.reads_folder('--input_dir', args.input_dir, is_image_file)
    for flag, folder in (('--output_dir', args.output_dir), ('--upsampled_dir', args.upsampled_dir)):
        if folder:
            plan.writes_folder(flag, folder)
            plan.writes_files((os.path.join(args.input_dir, rel_path),
                               os.path.join(folder, output_name(rel_path, args.ext))) for rel_path in images)
    plan.check()
    failed = []
    with plan.claimed(), logging_redirect():
        for rel_path in progress(images, desc='make LR', unit='image'):
            try:
                hr = read_rgb(os.path.join(args.input_dir, rel_path))
                if hr.width % args.scale or hr.height % args.scale:
                    log.warning('%s: %dx%d is not a multiple of %g; the LR size is rounded',
                                os.path.join(args.input_dir, rel_path), hr.width, hr.height, args.scale)
                lr = make_lr(hr, args.scale)
                name = output_name(rel_path, args.ext)
                save_rgb(np.asarray(lr), os.path.join(args.output_dir, name), args.jpeg_quality)
                if args.upsampled_dir:
                    upsampled = lr.resize(hr.size, Image.BICUBIC)
                    save_rgb(np.asarray(upsampled), os.path.join(args.upsampled_dir, name), args.jpeg_quality)
            except ImageReadError as err:
                log.error('%s (skipped)', err)
                failed.append(rel_path)
            except (OSError, ValueError) as err:
                log.error('%s: could not write its LR image (%s)', os.path.join(args.input_dir, rel_path), err)
                failed.append(rel_path)
    print(f'{len(images) - len(failed)} LR images written, {len(failed)} failed; results in {args.output_dir}')
    if failed:
        print('failed:\n' + '\n'.join(f'  {path}' for path in failed))
    return 1 if failed else 0


if __name__ == '__main__':
    run(main)
