"""Write a sample photo to try the pipeline on: one face (scikit-image's astronaut), or a group.

    python -m scripts.make_sample_photo [--output samples/astronaut.jpg]
    python -m scripts.make_sample_photo --group 5x8 --size 3000x2000 --face_sizes 40,60 --output samples/group.jpg

A group photo is a grid of real faces shipped with the installed packages (data/sample_photos.py)
at random sizes within --face_sizes (side of the face box, about brow to chin, in pixels).
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

from skimage import data

from data.sample_photos import grid_photo
from utils.cli import ArgumentParser, UserError, jpeg_quality, non_negative_int, output_file, run
from utils.image_io import save_rgb
from utils.output_plan import OutputPlan


def pair(value, separator, flag, kind=int):
    try:
        first, second = (kind(part) for part in value.lower().split(separator))
    except ValueError:
        raise UserError(f'{flag}: expected two numbers separated by {separator!r}, got {value!r}') from None
    return first, second


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', type=output_file, default='samples/astronaut.jpg', help='where to write the photo')
    parser.add_argument('--jpeg_quality', type=jpeg_quality, default=95, help='quality when writing a JPEG')
    parser.add_argument('--group', default='', help='ROWSxCOLS: a group photo of that grid of faces')
    parser.add_argument('--size', default='3000x2000', help='WIDTHxHEIGHT of a group photo')
    parser.add_argument('--face_sizes', default='40,60', help='MIN,MAX side of the face boxes of a group photo')
    parser.add_argument('--seed', type=non_negative_int, default=0, help='random seed of a group photo')
    args = parser.parse_args(argv)
    plan = OutputPlan()
    plan.writes_file('--output', args.output)
    plan.check()
    with plan.claimed():
        return write_photo(args)


def write_photo(args):
    if args.group:
        rows, cols = pair(args.group, 'x', '--group')
        width, height = pair(args.size, 'x', '--size')
        face_sizes = pair(args.face_sizes, ',', '--face_sizes', float)
        try:
            photo, boxes = grid_photo(height, width, rows, cols, face_sizes, args.seed)
        except ValueError as err:
            raise UserError(f'--group {args.group} --size {args.size} --face_sizes {args.face_sizes}: {err}') from None
        save_rgb(photo, args.output, args.jpeg_quality)
        print(f'wrote {args.output}: {len(boxes)} faces')
        return
    save_rgb(data.astronaut(), args.output, args.jpeg_quality)
    print(f'wrote {args.output}')


if __name__ == '__main__':
    run(main)
