"""The face-detection flags shared by the whole-photo and the dataset scripts (faces.detector.detector_from_flags
builds the detector they describe)."""
import argparse
from collections.abc import Callable

from api.choices import KINDS
from faces.detector import CNN_MEMORY_SHARE, DEFAULT_MIN_FACE_SIZE, DETECTORS, HOG_TILE_SIZE
from utils.cli import positive_int


def add_detection_flags(parser: argparse.ArgumentParser, text: Callable[[str], str] = str) -> argparse.ArgumentParser:
    """Add --detector --min_face_size --detect_min_score --detect_tile_size --detect_workers --detect_max_size.

    `text` converts the --detector value (e.g. one that strips shell quotes).
    """
    parser.add_argument('--detector', type=text, default='cnn', choices=DETECTORS,
                        help='dlib face detector: cnn (mmod, as the published script, more robust; run by '
                             'PyTorch) or hog (frontal faces only, 4 to 6 times faster on a CPU)')
    parser.add_argument('--min_face_size', type=KINDS['min_face_size'], default=DEFAULT_MIN_FACE_SIZE,
                        help='smallest face looked for: side of its box (about brow to chin) in photo pixels; '
                             'detection time grows with (photo size / min_face_size)^2')
    parser.add_argument('--detect_min_score', type=KINDS['detect_min_score'], default=None,
                        help='lowest detection score kept (default: 0 for cnn, 0.3 for hog, which else '
                             'takes badges and patterns for faces)')
    parser.add_argument('--detect_tile_size', type=KINDS['detect_tile_size'], default=None,
                        help='longest side of one searched image; larger photos are searched in overlapping '
                             'tiles (default: for cnn, which needs about 0.2 GB per megapixel of tile, as large as '
                             f'{CNN_MEMORY_SHARE * 100:.0f}%% of the memory of its device holds; {HOG_TILE_SIZE} for '
                             'hog)')
    parser.add_argument('--detect_workers', type=KINDS['detect_workers'], default=0,
                        help='hog: tiles searched at once, in threads (default 0: one per CPU core, as many as '
                             'half the memory holds; 1: in the calling thread); the cnn searches one tile at a '
                             'time on all of PyTorch\'s threads')
    parser.add_argument('--detect_max_size', type=positive_int, default=None,
                        help='deprecated, use --min_face_size: caps the longer side of the first search image')
    return parser
