"""Flags of the scripts that crop faces out of a folder of photos (align_and_crop_dir, prepare_celeba)."""
import argparse

from options.detection_flags import add_detection_flags
from utils.cli import input_path, jpeg_quality, output_folder


def add_folder_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags shared by the scripts that crop faces out of a folder of photos."""
    parser.add_argument('--input_dir', required=True, type=input_path, help='folder of photos (subfolders too)')
    parser.add_argument('--output_dir', required=True, type=output_folder,
                        help='crops are written here, keeping relative paths')
    add_detection_flags(parser)
    parser.add_argument('--ext', default='', choices=('', 'png', 'jpg'),
                        help='format of the crops (default: that of each photo, PNG for GIF)')
    parser.add_argument('--jpeg_quality', type=jpeg_quality, default=95, help='quality of JPEG crops')
    return parser
