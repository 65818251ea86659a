"""Write a sample video to try the pipeline on: a camera panning and zooming smoothly over a photo with a face.

    python -m scripts.make_sample_video [--photo PHOTO] [--output samples/astronaut.mp4] [--frames 48]

Each frame is a view of the photo (default: scikit-image's astronaut), aimed at its largest face, with a
little noise and JPEG compression, as a real camera gives (`video.stability.pan_zoom_clip`), encoded as H.264
at --fps. The stability measurement and the video benchmark run on such clips: the true camera path is known,
so is the true place of each face.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

from skimage import data

from faces.detector import FaceDetector
from utils.cli import (
    ArgumentParser,
    UserError,
    input_path,
    non_negative_int,
    output_file,
    positive_int,
    run,
)
from utils.image_io import ImageReadError, read_rgb_array
from utils.output_plan import OutputPlan
from video.stability import pan_zoom_clip
from video.writer import write_frames


def largest_face_centre(photo):
    """The centre of the largest face dlib's HOG finds in the photo (None: the photo's centre), for the camera
    to aim at."""
    with FaceDetector('hog', min_face_size=40, progress=False) as detector:
        faces = detector(photo)
    if not faces:
        return None
    left, top, right, bottom = max((face.box for face in faces), key=lambda box: (box[2] - box[0]) * (box[3] - box[1]))
    return (left + right) / 2, (top + bottom) / 2


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--photo', type=input_path, default='',
                        help="the photo filmed (default: scikit-image's astronaut)")
    parser.add_argument('--output', type=output_file, default='samples/astronaut.mp4',
                        help='where to write the video')
    parser.add_argument('--frames', type=positive_int, default=48, help='number of frames (default: 48)')
    parser.add_argument('--fps', type=positive_int, default=24, help='frames per second (default: 24)')
    parser.add_argument('--size', default='1280x720', help='WIDTHxHEIGHT of the frames, even (default: 1280x720)')
    parser.add_argument('--pan', type=float, default=0.3,
                        help="how far the camera travels: a share of the room the photo's edges leave (default 0.3)")
    parser.add_argument('--seed', type=non_negative_int, default=0, help='random seed of the path and the noise')
    args = parser.parse_args(argv)
    try:
        width, height = (int(part) for part in args.size.lower().split('x'))
    except ValueError:
        raise UserError(f'--size: expected WIDTHxHEIGHT, got {args.size!r}') from None
    if width % 2 or height % 2 or width < 2 or height < 2:
        raise UserError(f'--size {args.size}: H.264 in yuv420p needs even sides')
    plan = OutputPlan()
    plan.reads('--photo', args.photo)
    plan.writes_file('--output', args.output)
    plan.check()
    try:
        photo = read_rgb_array(args.photo) if args.photo else data.astronaut()
    except ImageReadError as err:
        raise UserError(str(err)) from None
    frames, _ = pan_zoom_clip(photo, args.frames, (width, height), seed=args.seed, pan=args.pan,
                              centre=largest_face_centre(photo))
    with plan.claimed():
        write_frames(args.output, frames, args.fps)
    print(f'wrote {args.output}: {len(frames)} frames of {width}x{height} at {args.fps} fps')


if __name__ == '__main__':
    run(main)
