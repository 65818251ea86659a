"""The flags of videos in the whole-photo script (test_enhance_single_unalign.py with a video, or a folder of them)."""
import argparse

from utils.cli import number_type
from video.writer import DEFAULT_CRF

MAX_CRF = 51  # x264's range: 0 lossless, 51 worst
# --start / --end: 31 years, past any video, yet in every container's ticks (time bases down to 1/4.29e9 s in MP4
# and AVI, 1/1e9 in Matroska) it fits the 64-bit seek target (9.2e18): beyond, the seek would overflow
MAX_SECONDS = 10 ** 9
seconds = number_type(float, low=0, high=MAX_SECONDS)


def add_video_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --crf --start --end --no_temporal_smoothing."""
    parser.add_argument('--crf', type=number_type(int, low=0, high=MAX_CRF), default=DEFAULT_CRF,
                        help=f'videos: H.264 quality, 0 (lossless) to {MAX_CRF} (default {DEFAULT_CRF}: visually '
                             'lossless); lower is larger')
    parser.add_argument('--start', type=seconds, default=None,
                        help='videos: enhance from this second on (the output starts there)')
    parser.add_argument('--end', type=seconds, default=None,
                        help='videos: enhance up to this second')
    parser.add_argument('--no_temporal_smoothing', action='store_true',
                        help='videos: align each frame\'s faces from its own landmarks only (they jitter more)')
    return parser
