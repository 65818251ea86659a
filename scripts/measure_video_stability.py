"""How much temporal smoothing steadies the faces of a video: alignment jitter and output flicker, with and without.

    python -m scripts.measure_video_stability --photo PHOTO [--frames 40] [--pretrain_model_path WEIGHTS]

A clip is made from the photo (`video.stability.pan_zoom_clip`: a camera panning and zooming smoothly over its
largest face, with noise and JPEG compression in every frame), so the true landmarks of every frame are known.
The whole-photo pipeline (CNN detector, tracking, alignment, the network, paste back) runs on it twice, with
and without `--no_temporal_smoothing`'s smoothing; for the face followed through the clip it reports:
- jitter: second differences over time of the landmarks the alignment used, in pixels of the 512 px face;
- error: their mean distance to the true landmarks (the lag smoothing adds), same units;
- flicker: the mean change of the output's face region between consecutive frames beyond the input's own,
  both seen through the true camera path (`video.stability.photo_views`: the motion taken out, so that what
  changes is noise, compression and flicker).
The network: SPARNetHD with --pretrain_model_path (the released weights, e.g. sparnethd_attn2d), or else a
stand-in that passes the aligned face through and adds a fine texture fixed in the aligned face's pixels,
as restoration networks add detail (pores, hair, lashes) where the crop puts it: an alignment that shakes
makes that detail shake. Each figure is the mean over --seeds clips (different camera paths).
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import statistics

import numpy as np
from skimage import data

from api import FaceEnhancer
from api.choices import CHOICES
from faces.align import transform_points
from faces.detector import FaceDetector
from faces.restorer import FaceRestorer
from utils.cli import ArgumentParser, UserError, positive_int, run
from utils.image_io import ImageReadError, read_rgb_array
from video.pipeline import VideoRestorer
from video.reader import Frame
from video.stability import face_flicker, landmark_error, landmark_jitter, pan_zoom_clip, photo_views

STAND_IN_PERIOD, STAND_IN_LEVELS = 6, 16  # the stand-in's texture: period in aligned pixels, amplitude


def texture_stand_in(faces: np.ndarray) -> np.ndarray:
    """The stand-in network: the aligned faces with a fine texture added at fixed places of the aligned crop."""
    index = 2 * np.pi * np.arange(faces.shape[1]) / STAND_IN_PERIOD
    texture = STAND_IN_LEVELS * np.outer(np.sin(index), np.sin(index))[..., None]
    return np.clip(np.rint(faces + texture), 0, 255).astype(np.uint8)


def largest_face(faces):
    return max(faces, key=lambda face: (face.box[2] - face.box[0]) * (face.box[3] - face.box[1]))


def nearest_face(faces, truth):
    """The face whose landmarks are closest to `truth` (the face followed), or None."""
    if not faces:
        return None
    return min(faces, key=lambda face: float(np.abs(face.landmarks - truth).mean()))


def run_clip(restorer, frames, times, truths, smooth):
    """(landmarks used (T, 5, 2), output frames) of the pipeline over the frames, or None where the face was missed."""
    video = VideoRestorer(restorer, smooth)
    used, outputs = [], []
    found = video.found(Frame(index, image, index, time) for index, (image, time) in enumerate(zip(frames, times)))
    for item, truth in zip(found, truths):
        video.enhance([item])
        outputs.append(video.paste(item))
        face = nearest_face(item.faces, truth)
        used.append(None if face is None else face.landmarks)
    return used, outputs


def face_box(landmarks):
    """The face's box in the photo: its landmarks' extent, widened by one eye distance each way."""
    margin = np.linalg.norm(landmarks[:2].mean(axis=0) - landmarks[2:4].mean(axis=0))
    return (*(landmarks.min(axis=0) - margin), *(landmarks.max(axis=0) + margin))


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
        box = face_box(photo_landmarks)
        outputs, inputs = photo_views(outputs, matrices, box), photo_views(frames, matrices, box)
        results[smooth] = (landmark_jitter(used), landmark_error(used, truths),
                           face_flicker(outputs, inputs, (0, 0, *inputs[0].shape[1::-1])))
    return results


def build_restorer(args):
    detector = FaceDetector('cnn', min_face_size=args.min_face_size, progress=False)
    if args.pretrain_model_path:
        enhance = FaceEnhancer(args.pretrain_model_path, device='cpu', precision=args.precision).enhance
        name = f'SPARNetHD ({args.pretrain_model_path}, {args.precision})'
    else:
        enhance = texture_stand_in
        name = f'stand-in (the face plus a texture of period {STAND_IN_PERIOD} px, {STAND_IN_LEVELS} levels)'
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
    parser.add_argument('--precision', default='fp32', choices=CHOICES['precision'],
                        help='of the network (default: fp32)')
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
