"""How much temporal smoothing steadies the faces of a video: alignment jitter and output flicker, with and without.

    python -m scripts.measure_video_stability --photo PHOTO [--frames 40] [--pretrain_model_path WEIGHTS]

A clip is made from the photo (`video.stability.pan_zoom_clip`: a camera panning and zooming smoothly over its
largest face, with noise and JPEG compression in every frame), so the true landmarks of every frame are known.
The whole-photo pipeline (CNN detector, tracking, alignment, the network, paste back) runs on it twice, with
and without `--no_temporal_smoothing`'s smoothing; for the face followed through the clip it reports:
- jitter: second differences over time of the landmarks the alignment used, in pixels of the 512 px face;
- error: their mean distance to the true landmarks (the lag smoothing adds), same units;
- flicker: the mean change of the output's face region between consecutive frames beyond the input's own.
The network: SPARNetHD with --pretrain_model_path (the released weights, e.g. sparnethd_attn2d), or else a
stand-in that keeps only what a 32x32 grid laid over the aligned face holds (area-reduced, then enlarged
bicubic): like a network, its output depends on where the crop falls, not only on the face, so an alignment
that shakes makes a face that shakes. Each figure is the mean over --seeds clips (different camera paths).
"""
import statistics

import cv2
import numpy as np
from skimage import data

from faces.align import transform_points
from faces.detector import FaceDetector
from faces.restorer import FaceRestorer
from models.enhancer import Enhancer
from options.test_options import TestOptions
from utils.cli import ArgumentParser, UserError, positive_int, run
from utils.image_io import ImageReadError, read_rgb_array
from video.pipeline import VideoRestorer
from video.reader import Frame
from video.scene_cuts import SceneCutDetector
from video.stability import face_flicker, landmark_error, landmark_jitter, pan_zoom_clip
from video.tracking import FaceTracker

STAND_IN_GRID = 32


def grid_stand_in(faces: np.ndarray) -> np.ndarray:
    """What a 32x32 grid over each aligned face keeps, enlarged back (bicubic): the stand-in network."""
    size = faces.shape[1]
    return np.stack([cv2.resize(cv2.resize(face, (STAND_IN_GRID, STAND_IN_GRID), interpolation=cv2.INTER_AREA),
                                (size, size), interpolation=cv2.INTER_CUBIC) for face in faces])


def largest_face(faces):
    return max(faces, key=lambda face: (face.box[2] - face.box[0]) * (face.box[3] - face.box[1]))


def nearest_face(faces, truth):
    """The face whose landmarks are closest to `truth` (the face followed), or None."""
    if not faces:
        return None
    return min(faces, key=lambda face: float(np.abs(face.landmarks - truth).mean()))


def run_clip(restorer, frames, times, truths, smooth):
    """(landmarks used (T, 5, 2), output frames) of the pipeline over the frames, or None where the face was missed."""
    video = VideoRestorer(restorer, FaceTracker(smooth=smooth), SceneCutDetector())
    used, outputs = [], []
    for index, (image, time, truth) in enumerate(zip(frames, times, truths)):
        item = video.find_and_align(Frame(index, image, index, time))
        video.enhance([item])
        outputs.append(video.paste(item))
        face = nearest_face(item.faces, truth)
        used.append(None if face is None else face.landmarks)
    return used, outputs


def face_boxes(truths):
    """A box per frame around the true face: its landmarks' extent, widened by one eye distance each way."""
    boxes = []
    for points in truths:
        margin = np.linalg.norm(points[:2].mean(axis=0) - points[2:4].mean(axis=0))
        boxes.append((*(points.min(axis=0) - margin), *(points.max(axis=0) + margin)))
    return np.array(boxes)


def measure(restorer, photo, photo_landmarks, args, seed):
    frames, matrices = pan_zoom_clip(photo, args.frames, (1280, 720), seed=seed, pan=args.pan,
                                     centre=tuple(photo_landmarks.mean(axis=0)))
    truths = np.array([transform_points(matrix, photo_landmarks) for matrix in matrices])
    times = np.arange(args.frames) / args.fps
    results = {}
    for smooth in (False, True):
        used, outputs = run_clip(restorer, frames, times, truths, smooth)
        if any(points is None for points in used):
            raise UserError(f'the face was missed in {sum(p is None for p in used)} of {args.frames} frames '
                            f'(seed {seed}); lower --pan or choose a photo with a larger face')
        used = np.array(used)
        results[smooth] = (landmark_jitter(used), landmark_error(used, truths),
                           face_flicker(outputs, frames, face_boxes(truths)))
    return results


def build_restorer(args):
    detector = FaceDetector('cnn', min_face_size=args.min_face_size, progress=False)
    if args.pretrain_model_path:
        opt = TestOptions().parse(['--gpus', '0', '--model', 'sparnethd', '--pretrain_model_path',
                                   args.pretrain_model_path, '--precision', args.precision])
        enhance, name = Enhancer.from_options(opt), f'SPARNetHD ({args.pretrain_model_path}, {args.precision})'
    else:
        enhance, name = grid_stand_in, f'stand-in ({STAND_IN_GRID}x{STAND_IN_GRID} grid)'
    return FaceRestorer(detector, enhance, progress=False), name


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--photo', default='', help="a photo with a face (default: scikit-image's astronaut)")
    parser.add_argument('--frames', type=positive_int, default=40, help='frames per clip (default: 40)')
    parser.add_argument('--fps', type=positive_int, default=30, help='frame rate of the clip (default: 30)')
    parser.add_argument('--pan', type=float, default=0.8, help='how far the camera travels (default: 0.8)')
    parser.add_argument('--seeds', type=positive_int, default=2, help='clips (camera paths) measured (default: 2)')
    parser.add_argument('--min_face_size', type=positive_int, default=120,
                        help='smallest face the detector looks for (default: 120; the followed face is larger)')
    parser.add_argument('--pretrain_model_path', default='', help='SPARNetHD weights (default: the stand-in)')
    parser.add_argument('--precision', default='fp32', help='of the network: fp32 or bf16 (default: fp32)')
    args = parser.parse_args(argv)
    try:
        photo = read_rgb_array(args.photo) if args.photo else data.astronaut()
    except ImageReadError as err:
        raise UserError(str(err)) from None
    restorer, name = build_restorer(args)
    with restorer.find_faces:
        found = restorer.find_faces(photo)
        if not found:
            raise UserError(f'{args.photo or "astronaut"}: no face of at least --min_face_size {args.min_face_size}')
        photo_landmarks = largest_face(found).landmarks
        runs = [measure(restorer, photo, photo_landmarks, args, seed) for seed in range(args.seeds)]
    print(f'{args.photo or "astronaut"}, {args.frames} frames of 1280x720 at {args.fps} fps, pan {args.pan}, '
          f'{args.seeds} clips, network: {name}')
    print('| smoothing | jitter (px) | error (px) | flicker (levels) |\n|---|---:|---:|---:|')
    means = {smooth: [statistics.fmean(run[smooth][i] for run in runs) for i in range(3)] for smooth in (False, True)}
    for smooth in (False, True):
        jitter, error, flicker = means[smooth]
        print(f'| {"on" if smooth else "off"} | {jitter:.3f} | {error:.2f} | {flicker:.3f} |')
    (jitter_off, _, flicker_off), (jitter_on, _, flicker_on) = means[False], means[True]
    print(f'smoothing divides the jitter by {jitter_off / jitter_on:.2f} and the flicker by '
          f'{flicker_off / flicker_on:.2f}' if flicker_on > 0 else 'smoothing leaves no flicker beyond the input\'s')
    return 0


if __name__ == '__main__':
    run(main)
