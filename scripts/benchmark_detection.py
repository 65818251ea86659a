"""Face detection on whole photos: faces found, time and memory, against the published approach and by photo size.

    python -m scripts.benchmark_detection --photos /path/to/photos --published
    python -m scripts.benchmark_detection --synthetic 1,6,24 --detectors cnn,hog --min_face_sizes 40,80
    python -m scripts.benchmark_detection --pipeline /path/to/photos

--photos: each photo is searched as this pipeline does (--detector, --min_face_size, ... as in
test_enhance_single_unalign.py) and, with --published, as the published script did (dlib's CNN on
the whole photo upsampled once), unless that search image is over --published_max_mp megapixels
(dlib's CNN needs about 1 GB per megapixel). Faces of the two match when their box centres are
less than 0.3 box sides apart. Both are timed in CPU seconds (the published search uses one
core; this one's CNN runs on PyTorch's threads), which compare on a shared machine, and in wall
seconds; peak memory is the process's.
--synthetic: 4:3 group photos of that many megapixels, faces of 40 to 60 px on a grid of 250 px
cells (data/sample_photos.py), searched with each detector and minimum face size: wall and
CPU seconds, peak memory of the search, faces found of those planted; HOG with one thread and
the default number, unless --detect_workers is given.
--pipeline: a folder run of SPARNetHD (random weights, fast path) over the photos, with the next
photo searched while the current one is enhanced (as test_enhance_single_unalign.py) or one
after the other: wall seconds of each.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import argparse
import os
import resource
import tempfile
import time
from concurrent.futures import Future

import dlib
import numpy as np

from baselines.environment import check_baseline_environment
from baselines.published import published_boxes
from data.sample_photos import grid_photo
from faces.detector import FaceDetector, default_tile_size, default_workers, detector_from_flags
from faces.dlib_models import CNN_DETECTOR_FILE, dlib_model_path
from faces.restorer import FaceRestorer
from faces.search_plan import same_faces
from inference.photo_results import save_results
from inference.whole_photos import read_and_search
from options.detection_flags import add_detection_flags
from utils.cli import UserError, run
from utils.image_io import list_images, read_rgb_array
from utils.one_ahead import one_ahead
from utils.progress import progress

SYNTHETIC_CELL = 250
SYNTHETIC_FACES = (40, 60)


def cpu_seconds():
    """CPU seconds of this process and of its ended children (worker processes once shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rss_mb(field):
    """A memory figure of this process from /proc/self/status: 'VmRSS' now, 'VmHWM' the most since the reset."""
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field + ':'))


def measured(function, *args):
    """(result, wall seconds, CPU seconds, GB this process held at most beyond its memory before) of function(*args).

    The peak is the kernel's high-water mark (reset first), which a sampling thread could miss.
    """
    with open('/proc/self/clear_refs', 'w') as clear_refs:
        clear_refs.write('5')
    before = rss_mb('VmRSS')
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return result, wall, cpu, (rss_mb('VmHWM') - before) / 1024


def search_once(detector, photo):
    """The boxes of the faces found; the detector's HOG threads (if any) are stopped."""
    try:
        return [face.box for face in detector(photo)]
    finally:
        detector.close()


def box_differences(theirs, ours, pairs):
    """(faces boxed exactly as the published search boxes them, largest coordinate difference in px) of `pairs`."""
    differences = [max(abs(float(a) - float(b)) for a, b in zip(theirs[i], ours[j])) for i, j in pairs]
    return sum(difference == 0 for difference in differences), max(differences, default=0.0)


def compare_photos(args, detector):
    cnn = dlib.cnn_face_detection_model_v1(dlib_model_path(CNN_DETECTOR_FILE)) if args.published else None
    print('| photo | megapixels | published: faces | CPU s (= wall s) | peak GB | this: faces | CPU s | wall s | '
          'peak GB | found by both | same box | largest box difference (px) | published only | this only |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    totals, largest_all = np.zeros(8), 0.0
    for rel_path in progress(list_images(args.photos), desc='photos', unit='photo', leave=False):
        photo = read_rgb_array(os.path.join(args.photos, rel_path))
        megapixels = photo.shape[0] * photo.shape[1] / 1e6
        ours, wall, cpu, peak = measured(search_once, detector, photo)
        ours_cells = f'{len(ours)} | {cpu:.1f} | {wall:.1f} | {peak:.2f}'
        if cnn is None or 4 * megapixels > args.published_max_mp:
            reason = 'not run' if cnn is None else f'not run (~{4 * megapixels:.0f} GB)'
            print(f'| {rel_path} | {megapixels:.1f} | {reason} | | | {ours_cells} | | | | | |')
            continue
        theirs, _, published_cpu, published_peak = measured(published_boxes, photo, cnn)
        pairs = same_faces(theirs, ours)
        same, largest = box_differences(theirs, ours, pairs)
        both = len(pairs)
        row = [len(theirs), published_cpu, len(ours), cpu, both, same, len(theirs) - both, len(ours) - both]
        totals += row
        largest_all = max(largest_all, largest)
        print(f'| {rel_path} | {megapixels:.1f} | {row[0]} | {row[1]:.1f} | {published_peak:.1f} | {ours_cells} '
              f'| {both} | {same} | {largest:g} | {row[6]} | {row[7]} |')
    if cnn is not None:
        print(f'| all run by both | | {totals[0]:.0f} | {totals[1]:.0f} | | {totals[2]:.0f} | {totals[3]:.0f} | | | '
              f'{totals[4]:.0f} | {totals[5]:.0f} | {largest_all:g} | {totals[6]:.0f} | '
              f'{totals[7]:.0f} |')


def synthetic_photo(megapixels):
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    return grid_photo(height, width, height // SYNTHETIC_CELL, width // SYNTHETIC_CELL, SYNTHETIC_FACES)


def compare_sizes(args):
    sizes = [float(value) for value in args.synthetic.split(',')]
    detectors = args.detectors.split(',')
    min_face_sizes = [int(value) for value in args.min_face_sizes.split(',')]
    print('| photo | detector | --min_face_size | search | HOG threads | wall s | CPU s | peak GB added | '
          'faces found / planted |')
    print('|---|---|---|---|---|---|---|---|---|')
    for megapixels in sizes:
        photo, boxes = synthetic_photo(megapixels)
        for kind in detectors:
            for min_face_size in min_face_sizes:
                tile_size = args.detect_tile_size or default_tile_size(kind)
                counts = ([args.detect_workers] if args.detect_workers and kind == 'hog'
                          else sorted({1, default_workers(kind, tile_size)}))
                for workers in counts:
                    detector = FaceDetector(kind, min_face_size, tile_size=tile_size, workers=workers)
                    found, wall, cpu, peak = measured(search_once, detector, photo)
                    plan = ', '.join(f'{p.scale:.2f} x {len(p.tiles)}' for p in detector.plan(*photo.shape[:2]))
                    print(f'| {photo.shape[1]}x{photo.shape[0]} ({megapixels:g} MP) | {kind} | {min_face_size} | '
                          f"scale x tiles: {plan} | {'-' if kind == 'cnn' else workers} | {wall:.1f} | {cpu:.1f} | "
                          f'{peak:.2f} | {len(same_faces(boxes, found))} / {len(boxes)} |')


def random_enhancer():
    """SPARNetHD (2D attention) with random weights on the fast path: (N, 512, 512, 3) uint8 -> same."""
    import torch

    from archs.folded_sparnet import prepare_inference_net
    from archs.generator_spec import GeneratorSpec, random_generator
    from utils.tensor_image import tensor_to_uint8, uint8_to_tensor
    net = prepare_inference_net(random_generator(GeneratorSpec('sparnethd', 10, 'spar', 'in')), torch.device('cpu'))

    def enhance(faces):
        with torch.inference_mode():
            return tensor_to_uint8(net(uint8_to_tensor(faces)))
    return enhance


def done(function, item):
    future = Future()
    future.set_result(function(item))
    return future


def folder_run(paths, detector, restorer, out_dir, ahead):
    """Wall seconds of searching, enhancing and saving every photo, the search one photo ahead or not."""
    def search(path):
        return read_and_search(detector, path)
    start = time.perf_counter()
    searches = one_ahead(search, paths) if ahead else ((path, done(search, path)) for path in paths)
    for index, (_, searched) in enumerate(searches):
        photo, found = searched.result()
        if found.faces:
            save_results(restorer.restore(photo, found.faces), os.path.join(out_dir, str(index)), 'jpg', 75)
    return time.perf_counter() - start


def compare_pipelines(args):
    import torch

    from utils.devices import set_inference_threads
    paths = [os.path.join(args.pipeline, rel_path) for rel_path in list_images(args.pipeline)]
    set_inference_threads()
    restorer = FaceRestorer(None, random_enhancer(), progress=False)
    with detector_from_flags(args) as detector, tempfile.TemporaryDirectory() as out_dir:
        folder_run(paths[:1], detector, restorer, out_dir, ahead=False)  # warm-up: first torch runs
        for ahead in (False, True, False, True):
            seconds = folder_run(paths, detector, restorer, out_dir, ahead)
            order = 'next photo searched during enhancement' if ahead else 'one after the other'
            print(f"{len(paths)} photos, {order}: "
                  f'{seconds:.1f} s (detector {detector.kind}, {torch.get_num_threads()} torch threads)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--photos', default='', help='folder of photos to search and compare')
    parser.add_argument('--published', action='store_true', help='also search them as the published script did')
    parser.add_argument('--published_max_mp', type=float, default=10,
                        help='largest published search image (megapixels) to run (default 10: about 10 GB)')
    parser.add_argument('--synthetic', default='', help='comma-separated megapixels of synthetic group photos')
    parser.add_argument('--detectors', default='cnn,hog', help='detectors for --synthetic')
    parser.add_argument('--min_face_sizes', default='40,80', help='minimum face sizes for --synthetic')
    parser.add_argument('--pipeline', default='', help='folder of photos for a timed folder run')
    add_detection_flags(parser)
    args = parser.parse_args(argv)
    if args.published:
        check_baseline_environment()
    if not (args.photos or args.synthetic or args.pipeline):
        raise UserError('nothing to measure: give --photos, --synthetic and/or --pipeline')
    print(f'load average at start: {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} cores')
    if args.photos:
        compare_photos(args, detector_from_flags(args))
    if args.synthetic:
        compare_sizes(args)
    if args.pipeline:
        compare_pipelines(args)
    print(f'load average at end: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
    run(main)
