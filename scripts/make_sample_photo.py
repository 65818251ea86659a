"""Write a sample photo with one face (scikit-image's astronaut, 512x512) to try the pipeline on.

    python scripts/make_sample_photo.py [--output samples/astronaut.jpg]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from skimage import data  # noqa: E402

from utils.cli import ArgumentParser, jpeg_quality, run  # noqa: E402
from utils.image_io import save_rgb  # noqa: E402


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', default='samples/astronaut.jpg', help='where to write the photo')
    parser.add_argument('--jpeg_quality', type=jpeg_quality, default=95, help='quality when writing a JPEG')
    args = parser.parse_args(argv)
    save_rgb(data.astronaut(), args.output, args.jpeg_quality)
    print(f'wrote {args.output}')


if __name__ == '__main__':
    run(main)
