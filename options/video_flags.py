"""The flags of videos in the whole-photo script (test_enhance_single_unalign.py with a video, or a folder of them)."""
import argparse

from api.choices import KINDS, MAX_CRF
from video.writer import DEFAULT_CRF


def add_video_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --crf --start --end --no_temporal_smoothing."""
    parser.add_argument('--crf', type=KINDS['crf'], default=DEFAULT_CRF,
                        help=f'videos: H.264 quality, 0 (lossless) to {MAX_CRF} (default {DEFAULT_CRF}: visually '
                             'lossless); lower is larger')
    parser.add_argument('--start', type=KINDS['start'], default=None,
                        help='videos: enhance from this second on (the output starts there)')
    parser.add_argument('--end', type=KINDS['end'], default=None,
                        help='videos: enhance up to this second')
    parser.add_argument('--no_temporal_smoothing', action='store_true',
                        help='videos: align each frame\'s faces from its own landmarks only (they jitter more)')
    return parser
