"""The web page's jobs without a browser (webapp/jobs.py) and the page and server parts of app.py: the scripts'
pipeline and results, one line per input that fails, weights fetched once, limits, choices outside the page refused."""
import html
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from app import main as app_main
from helpers.app_server import free_port, wait_until_serving
from helpers.clips import astronaut_frames, read_clip, write_clip
from helpers.commands import ROOT, run_in_process, run_test_py, run_whole_photos
from helpers.faces import face_images
from metrics.psnr_ssim import psnr
from models.enhancer import Enhancer
from options.app_options import parse_app_args
from utils.cli import UserError
from utils.devices import native_bf16_cpu
from webapp import page as app
from webapp.added_models import added_models
from webapp.jobs import AppPipeline, Item, JobError, JobResult, supported_precisions, unique_names
from webapp.server import make_run_dir, remove_leftovers, serve_app
from weights.download import DownloadError
from weights.released import RELEASED_MODELS

HD = RELEASED_MODELS['sparnethd_attn2d']


class InvertingEnhancer:
    """Stands in for SPARNetHD: 255 - face, so the pasted faces show; records the batches."""

    def __init__(self):
        self.batches = []

    def __call__(self, faces):
        self.batches.append(len(faces))
        return 255 - faces


@pytest.fixture
def built(network_stand_in):
    """The networks built, as the stand-in each one is."""
    return network_stand_in(InvertingEnhancer)


@pytest.fixture
def hd_weights_dir(tmp_path, released_checkpoint):
    """A --weights_dir holding the released SPARNetHD file (random weights, never downloaded)."""
    folder = tmp_path / 'weights'
    folder.mkdir()
    os.link(released_checkpoint('sparnethd_attn2d'), folder / HD.file_name)
    return str(folder)


def read(path):
    return np.asarray(Image.open(path).convert('RGB'))


@pytest.mark.slow
def test_photos_go_through_the_scripts_pipeline(tmp_path, built, hd_weights_dir):
    """Same photo, same choices: the page's results are test_enhance_single_unalign.py's, file for file."""
    photos = tmp_path / 'photos'
    photos.mkdir()
    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(photos / 'astronaut.png')
    Image.fromarray(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)).save(photos / 'pair.jpg', quality=95)
    Image.fromarray(data.chelsea()).save(photos / 'cat.jpg')
    (photos / 'broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, weights_dir=hd_weights_dir)
    paths = [str(photos / name) for name in ('astronaut.png', 'pair.jpg', 'cat.jpg', 'broken.jpg')]
    result = pipeline.enhance_photos(paths, 'sparnethd_attn2d', 'hog', 2, 'fp32', 'png')

    job = tmp_path / 'run' / 'photos_0001'
    assert result.folder == str(job)
    assert [(item.name, len(item.faces)) for item in result.items] == [('astronaut', 1), ('pair', 2)]
    assert built[0].batches == [1, 1, 1]  # one face at a time on a CPU: progress per face
    assert result.problems[0] == ('cat: no face found of at least 40 px (detector hog); try the other detector, '
                                  'or a photo where the faces are larger')
    assert result.problems[1].startswith('broken: not a readable image (') and len(result.problems) == 2
    assert not any(str(tmp_path) in problem for problem in result.problems)  # file names, no server paths

    out = tmp_path / 'script'
    assert run_whole_photos(['--gpus', '0', '--pretrain_model_path', os.path.join(hd_weights_dir, HD.file_name),
                        '--detector', 'hog', '--test_upscale', '2', '--ext', 'png',
                        '--test_img_path', paths[0], '--results_dir', str(out)]) == 0
    final = read(job / 'astronaut.png')
    np.testing.assert_array_equal(final, read(out / 'hq_final.png'))
    for kind in ('LQ_faces', 'HQ'):
        np.testing.assert_array_equal(read(job / 'astronaut' / kind / '000.png'), read(out / kind / '000.png'))
    assert final.shape == (1024, 1024, 3)
    assert np.abs(final[230:270, 420:470].astype(int) - 128).mean() > 40  # the inverted face is pasted
    with zipfile.ZipFile(result.zip_path) as archive:
        assert sorted(archive.namelist()) == ['astronaut/HQ/000.png', 'astronaut/LQ_faces/000.png',
                                              'pair/HQ/000.png', 'pair/HQ/001.png',
                                              'pair/LQ_faces/000.png', 'pair/LQ_faces/001.png']
        assert archive.read('pair/HQ/001.png') == (job / 'pair' / 'HQ' / '001.png').read_bytes()

    assert len(built) == 2  # the page's and the script's
    second = pipeline.enhance_photos([paths[0]], 'sparnethd_attn2d', 'hog', 1, 'fp32', 'jpg')
    assert len(built) == 2  # the page's network stayed loaded
    assert second.folder.endswith('photos_0002') and os.path.isfile(second.items[0].after)
    assert second.items[0].after.endswith('astronaut.jpg')


@pytest.mark.slow
def test_aligned_faces_are_test_py_outputs_and_weights_come_once(tmp_path, weights_server, released_checkpoint):
    light = RELEASED_MODELS['sparnet_light_attn3d']
    weights_server.add_released('sparnet_light_attn3d', released_checkpoint('sparnet_light_attn3d'))
    faces = tmp_path / 'faces'
    faces.mkdir()
    for index, face in enumerate(face_images(2, seed=3, size=(16, 16))):
        Image.fromarray(face).save(faces / f'face_{index}.png')
    (faces / 'face_2.png').write_bytes(b'\x89PNG not a png')
    paths = [str(faces / f'face_{index}.png') for index in range(3)]
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0)
    result = pipeline.enhance_faces(paths, 'sparnet_light_attn3d', 'fp32', 'png')
    assert [item.name for item in result.items] == ['face_0', 'face_1']
    assert result.problems == [result.problems[0]] and result.problems[0].startswith('face_2: not a readable image')
    assert weights_server.requests == [f'/{light.file_name}']

    # one face per batch as the page (batches of several round a few pixels one level apart)
    assert run_test_py(['--gpus', '0', '--pretrain_model_path', 'sparnet_light_attn3d', '--dataroot', str(faces),
                            '--save_as_dir', str(tmp_path / 'test_py'), '--num_threads', '0', '--batch_size', '1']) == 1
    for item in result.items:
        output = read(item.after)
        assert output.shape == (128, 128, 3)
        np.testing.assert_array_equal(output, read(tmp_path / 'test_py' / f'{item.name}.png'))
    with zipfile.ZipFile(result.zip_path) as archive:
        assert sorted(archive.namelist()) == ['face_0.png', 'face_1.png']
    assert weights_server.requests == [f'/{light.file_name}']  # downloaded once, then from the cache


@pytest.mark.slow
def test_limits_and_choices_outside_the_page(tmp_path, built, hd_weights_dir):
    Image.fromarray(data.astronaut()).save(tmp_path / 'astronaut.png')
    photo = str(tmp_path / 'astronaut.png')
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, weights_dir=hd_weights_dir, max_pixels=600 * 600)
    assert len(pipeline.enhance_photos([photo], 'sparnethd_attn2d', 'hog', 1).items) == 1  # 512x512 fits
    result = pipeline.enhance_photos([photo], 'sparnethd_attn2d', 'hog', 2)
    assert result.items == [] and result.zip_path is None
    assert result.problems == ['astronaut: 512x512 enlarged 2x is 1.0 megapixels, more than the 0.4 this server '
                               'takes (app.py --max_pixels); use a smaller photo or upscale']
    for choices, message in [(('sparnet',), "'sparnet' is not a model for whole photos offered here "
                                            "(sparnethd_attn2d, sparnethd_attn3d)"),
                             (('https://example.com/x.pth',), 'is not a model for whole photos'),
                             (('sparnethd_attn2d', 'mtcnn'), "'mtcnn' is not a face detector"),
                             (('sparnethd_attn2d', 'hog', 8), 'is not a upscale factor'),
                             (('sparnethd_attn2d', 'hog', 1, 'fp16'), "'fp16' is not a precision of this cpu"),
                             (('sparnethd_attn2d', 'hog', 1, 'fp32', 'gif'), "'gif' is not a output format")]:
        with pytest.raises(JobError, match=re.escape(message)):
            pipeline.enhance_photos([photo], *choices)
    with pytest.raises(JobError, match="'/etc/passwd' is not a model"):
        pipeline.enhance_faces([photo], '/etc/passwd')
    with pytest.raises(DownloadError, match=r'^sparnethd_attn3d: could not download .*\(connection refused\)'):
        pipeline.enhance_photos([photo], 'sparnethd_attn3d', 'hog')  # the session's download URL refuses
    assert len(built) == 1 and sorted(os.listdir(tmp_path / 'run')) == ['photos_0001']


@pytest.mark.slow
def test_a_video_goes_through_the_command_lines_run(tmp_path, gradio, monkeypatch, built, hd_weights_dir):
    """The page's video job is test_enhance_single_unalign.py's on one video: every frame, its timing, H.264; a
    damaged video gives the frames that decoded and a warning."""
    monkeypatch.setenv(app.GRADIO_TEMP_ENV, str(tmp_path / 'cache'))
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, astronaut_frames(4))
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, weights_dir=hd_weights_dir)
    result = app.run_job(pipeline.enhance_video, str(clip), 'sparnethd_attn2d', 'hog', 1, 'fp32', 'none', None, None)
    assert result.folder == str(tmp_path / 'run' / 'videos_0001') and result.problems == []
    given, made = read_clip(clip), read_clip(result.items[0].after)
    assert made['codec'] == 'h264' and made['times'] == pytest.approx(given['times'], abs=1e-6)
    assert made['audio'] == given['audio']
    assert (result.totals.frames, result.totals.faces) == (4, 4) and built[0].batches == [1, 1, 1, 1]
    assert run_whole_photos(['--gpus', '0', '--pretrain_model_path', os.path.join(hd_weights_dir, HD.file_name),
                             '--detector', 'hog', '--test_img_path', str(clip),
                             '--results_dir', str(tmp_path / 'script')]) == 0
    script = read_clip(tmp_path / 'script' / 'clip.mp4')
    assert script['times'] == made['times']
    # the same pictures, encoded by two runs: x264 (threaded) does not give the same bits twice here
    assert min(psnr(page, frame, 'rgb') for page, frame in zip(made['images'], script['images'], strict=True)) > 40
    shown, status = app.video_outputs(result)
    assert shown.startswith(str(tmp_path / 'cache')) and os.path.samefile(shown, result.items[0].after)
    assert status.startswith('**1 of 1 video enhanced** (4 frames, 4 with faces) in ')

    damaged = tmp_path / 'damaged.mp4'
    write_clip(damaged, astronaut_frames(10), faststart=True)  # the index first: the frames are in the rest
    damaged.write_bytes(damaged.read_bytes()[:int(damaged.stat().st_size * 0.6)])
    with pytest.warns(UserWarning, match='frame') as warned:  # gr.Warning outside a page
        result = app.run_job(pipeline.enhance_video, str(damaged), 'sparnethd_attn2d', 'hog')
    kept = len(read_clip(result.items[0].after)['images'])
    assert 0 < kept < 10 and result.totals is None
    assert [str(warning.message) for warning in warned] == result.problems == [
        f'damaged: {10 - kept} frame(s) could not be decoded (a damaged or truncated file); the {kept} that did are '
        'in damaged.mp4']


@pytest.mark.slow
def test_videos_the_page_cannot_take_are_one_message(tmp_path, gradio, built, hd_weights_dir):
    clip, notes = tmp_path / 'clip.mp4', tmp_path / 'notes.mp4'
    write_clip(clip, astronaut_frames(2))
    notes.write_text('not a video')
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, weights_dir=hd_weights_dir, max_pixels=200_000)
    for path, choices, message in [
        (notes, (), 'notes: not a video FFmpeg can read (InvalidDataError: '),
        (clip, ('sparnethd_attn2d', 'hog', 2), 'clip: 320x240 enlarged 2x is 0.3 megapixels, more than the 0.2 this '
                                               'server takes (app.py --max_pixels); use a smaller video or upscale'),
        (clip, ('sparnethd_attn2d', 'hog', 1, 'fp32', 'none', 0.2, 0.1), 'the end (0.1 s) must be after the start '
                                                                         '(0.2 s)'),
        (clip, ('sparnethd_attn2d', 'hog', 1, 'fp32', 'none', 5), 'clip: no frame decoded from --start 5'),
        (None, (), 'Add a video file first.'),
    ]:
        with pytest.raises(gradio.Error) as error:
            app.run_job(pipeline.enhance_video, path and str(path), *(choices or ('sparnethd_attn2d', 'hog')),
                        missing=app.VIDEO_MISSING)
        assert error.value.message.startswith(html.escape(message)), error.value.message
        assert '\n' not in error.value.message and str(tmp_path) not in error.value.message
    assert len(built) == 1 and os.listdir(tmp_path / 'run') == []  # the network loaded for --start 5 only


def test_a_start_or_end_past_any_video_is_one_message(tmp_path, gradio, built, hd_weights_dir):
    """Seconds the command line's --start / --end refuse are refused by the job, in one message, before any work."""
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, astronaut_frames(2))
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, weights_dir=hd_weights_dir)
    for start, end, what in [(1e300, None, 'start'), (None, 1e300, 'end'), (float('nan'), None, 'start')]:
        with pytest.raises(gradio.Error) as error:
            app.run_job(pipeline.enhance_video, str(clip), 'sparnethd_attn2d', 'hog', 1, 'fp32', 'none', start, end)
        got = 'nan' if start != start else '1e+300'
        assert error.value.message == f'the {what} must be a number of seconds from 0 to 1000000000 (got {got})'
    assert built == [] and not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_a_video_job_that_fails_leaves_no_job_folder(tmp_path, gradio, network_stand_in, hd_weights_dir):
    """A failure the job does not expect (the network out of memory at the second frame): one message, and neither
    the video's temporary file nor an empty job folder stays."""
    class OutOfMemory:
        calls = 0

        def __call__(self, faces):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError('out of memory')
            return 255 - faces
    network_stand_in(lambda: OutOfMemory())
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, astronaut_frames(4))
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, weights_dir=hd_weights_dir)
    with pytest.raises(gradio.Error) as error:
        app.run_job(pipeline.enhance_video, str(clip), 'sparnethd_attn2d', 'hog')
    assert error.value.message == ('the job failed (RuntimeError: out of memory); the server log has the '
                                   'details')
    assert os.listdir(tmp_path / 'run') == []


@pytest.mark.slow
def test_cancelled_jobs_stop_at_their_next_photo_and_no_other_starts(tmp_path, network_stand_in, hd_weights_dir):
    """The server stopping: a photo job stops before its next photo (the photo done is kept), the wait says when a
    job still runs, and no job starts after."""
    entered, release = threading.Event(), threading.Event()

    def slow_network(faces):
        entered.set()
        assert release.wait(60)
        return 255 - faces
    network_stand_in(lambda: slow_network)
    Image.fromarray(data.astronaut()).save(tmp_path / 'astronaut.png')
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, weights_dir=hd_weights_dir)
    outcome = []

    def job():
        try:
            pipeline.enhance_photos([str(tmp_path / 'astronaut.png')] * 3, 'sparnethd_attn2d', 'hog')
        except JobError as err:
            outcome.append(str(err))
    thread = threading.Thread(target=job)
    thread.start()
    assert entered.wait(60)  # the first photo's face in the network
    assert pipeline.cancel_jobs() == 1
    assert not pipeline.wait_for_jobs(0.2)  # still in its batch of faces
    release.set()
    assert pipeline.wait_for_jobs(60)
    thread.join()
    assert outcome == ['the server is stopping: the job was cancelled']
    assert sorted(os.listdir(tmp_path / 'run' / 'photos_0001')) == ['astronaut', 'astronaut.png']
    with pytest.raises(JobError, match='^the server is stopping: the job was cancelled$'):
        pipeline.enhance_photos([str(tmp_path / 'astronaut.png')], 'sparnethd_attn2d', 'hog')


@pytest.mark.slow
def test_sigterm_during_a_video_job_cancels_it_and_leaves_nothing(tmp_path, face_restorer_standin):
    """app.py stopped by SIGTERM in the middle of a video job: the job is cancelled and its threads (FFmpeg's,
    torch's) end before the interpreter does (it aborted: `terminate called without an active exception`, exit
    134), the video's temporary file and the job folder are removed, exit 0."""
    client = pytest.importorskip('gradio_client', reason='pip install -r requirements-app.txt')
    clip, results = tmp_path / 'clip.mp4', tmp_path / 'results'
    write_clip(clip, astronaut_frames(40))  # about 10 s of work here, cut short
    port = free_port()
    with open(tmp_path / 'app.log', 'w+') as log:
        process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'app.py'), '--gpus', '0', '--port', str(port),
                                    '--results_dir', str(results), '--models', face_restorer_standin('restoreformer')],
                                   cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, 'TMPDIR': str(tmp_path), 'OMP_NUM_THREADS': '1'})
        try:
            wait_until_serving(process, f'http://127.0.0.1:{port}/')
            page = client.Client(f'http://127.0.0.1:{port}/', verbose=False)
            page.submit(client.handle_file(str(clip)), 'restoreformer.pth', 'hog', 1, 'none', 'fp32', 0, 0,
                        api_name='/enhance_video')
            deadline = time.monotonic() + 300
            while not list(results.rglob('videos_0001/clip.mp4.*.part')):
                assert time.monotonic() < deadline and process.poll() is None, 'the video job did not start'
                time.sleep(0.1)
            time.sleep(2)  # frames go through the network
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        log.seek(0)
        output = log.read()
    assert code in (0, 128 + signal.SIGTERM), output
    assert 'stopping: 1 running job cancelled, waiting up to 8 s for it' in output
    assert 'terminate called' not in output and 'Traceback' not in output
    assert list(results.rglob('*')) == []  # no .part, no job folder, no Gradio cache: the run folder went too


def test_leftovers_of_a_stopped_run_are_removed(tmp_path):
    """What jobs stopped mid-way leave in the run folder, removed when the server stops; their results kept."""
    for path in ('videos_0001/clip.mp4.4242-0123abcd.part', 'photos_0002/a.png',
                 'photos_0002/a/HQ/000.png.7-89abcdef.part', 'photos_0002/notes.part'):
        (tmp_path / 'run' / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'run' / path).write_bytes(b'x')
    (tmp_path / 'run' / 'faces_0003').mkdir()
    remove_leftovers(str(tmp_path / 'run'))
    assert sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob('*')) == [
        'run', 'run/photos_0002', 'run/photos_0002/a.png', 'run/photos_0002/notes.part']
    (tmp_path / 'run' / 'photos_0002' / 'a.png').unlink()
    (tmp_path / 'run' / 'photos_0002' / 'notes.part').unlink()
    remove_leftovers(str(tmp_path / 'run'))
    assert list(tmp_path.iterdir()) == []  # an empty run folder goes too


def test_precisions_offered_and_names():
    cpu = supported_precisions(torch.device('cpu'))
    assert cpu == (['fp32', 'bf16', 'int8', 'auto'] if native_bf16_cpu() else ['fp32', 'int8', 'auto'])
    assert unique_names(['a/x.jpg', 'b/x.png', 'x_2.jpg', 'c/x.jpg']) == ['x', 'x_2', 'x_2_2', 'x_3']


def test_an_enhancer_shared_by_threads_gives_each_its_own_faces():
    """Jobs run in threads and share a loaded network: a batch must not meet another job's input."""
    def slow_identity(batch):
        time.sleep(0.01)
        return batch
    enhancer = Enhancer(slow_identity, 'cpu', batch_size=1)
    faces = [np.full((3, 4, 4, 3), value, np.uint8) for value in (0, 100, 200)]
    outputs = [None] * 3

    def run(index):
        outputs[index] = enhancer(faces[index])
    threads = [threading.Thread(target=run, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for face, output in zip(faces, outputs):
        np.testing.assert_array_equal(output, face)


@pytest.mark.parametrize('flags, message', [(['--concurrency', '0'], '--concurrency must be 1 or more'),
                                            (['--port', '70000'], '--port must be a port number'),
                                            (['--max_pixels', '0'], '--max_pixels must be 1 or more')])
def test_app_flags(tmp_path, flags, message):
    with pytest.raises(UserError, match=message):
        serve_app(parse_app_args([*flags, '--results_dir', str(tmp_path / 'results')]))
    assert not (tmp_path / 'results').exists()


def test_app_without_gradio_says_how_to_install_it(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None if name == 'gradio' else find_spec(name))
    with pytest.raises(UserError, match='needs Gradio: pip install -r requirements-app.txt'):
        serve_app(parse_app_args(['--results_dir', str(tmp_path / 'results')]))
    assert not (tmp_path / 'results').exists()


def test_run_folders_and_served_copies(tmp_path, monkeypatch):
    first, second = make_run_dir(str(tmp_path)), make_run_dir(str(tmp_path))
    assert first != second and os.path.dirname(first) == str(tmp_path)  # same second: -2
    cache = os.path.join(first, app.CACHE_FOLDER)
    monkeypatch.setenv(app.GRADIO_TEMP_ENV, cache)
    result = os.path.join(first, 'photos_0001', 'x.png')
    os.makedirs(os.path.dirname(result))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(result)
    copy = app.served(result)
    assert os.path.dirname(os.path.dirname(copy)) == cache and os.path.basename(copy) == 'x.png'
    assert os.path.samefile(copy, result) and app.served(copy) == copy


@pytest.fixture
def gradio(monkeypatch):
    module = pytest.importorskip('gradio', reason='pip install -r requirements-app.txt')
    monkeypatch.setattr(app, 'gr', module)
    return module


def test_job_failures_become_one_message(gradio):
    def broken(files):
        return 1 / 0

    def refused(files):
        raise JobError("'x' is not a model offered here <sparnet>")
    for job, files, message in [(broken, ['a.jpg'], 'the job failed (ZeroDivisionError: division by zero); '
                                                    'the server log has the details'),
                                (refused, ['a.jpg'], "&#x27;x&#x27; is not a model offered here &lt;sparnet&gt;"),
                                (broken, None, 'Add one or more image files first.')]:
        with pytest.raises(gradio.Error) as error:
            app.run_job(job, files)
        assert error.value.message == message  # escaped: the page shows it as HTML


def test_photo_results_in_the_page(tmp_path, gradio, monkeypatch):
    monkeypatch.setenv(app.GRADIO_TEMP_ENV, str(tmp_path / 'cache'))
    for name in ('a.jpg', 'a.png', 'a_lq.png', 'a_hq.png', 'b.jpg', 'b.png', 'faces.zip'):
        (tmp_path / name).write_bytes(name.encode())
    items = [Item('a', str(tmp_path / 'a.jpg'), str(tmp_path / 'a.png'),
                  [(str(tmp_path / 'a_lq.png'), str(tmp_path / 'a_hq.png'))]),
             Item('b', str(tmp_path / 'b.jpg'), str(tmp_path / 'b.png'))]
    result = JobResult(str(tmp_path), items, ['c: no face found'], str(tmp_path / 'faces.zip'), 2.0)
    slider, chooser, gallery, downloads, pairs, status = app.photo_outputs(result, 3)
    assert [name for name, _, _ in pairs] == ['a', 'b'] and slider == pairs[0][1:]
    assert chooser.visible and chooser.value == 'a'
    assert [caption for _, caption in gallery] == ['a #0 before', 'a #0 after']
    assert [os.path.basename(path) for path in downloads] == ['a.png', 'b.png', 'faces.zip']
    assert all(path.startswith(str(tmp_path / 'cache')) for path in downloads + [path for path, _ in gallery])
    assert status == (f'**2 of 3 photos enhanced** (1 face) in 2.0 s; files in `{tmp_path}`\n'
                      '- c: no face found')


def test_both_tabs_share_one_queue_for_the_device(tmp_path, gradio):
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0)
    page = app.build_page(pipeline, concurrency=2)
    jobs = [fn for fn in page.fns.values() if fn.name.startswith('enhance_')]
    assert sorted(fn.name for fn in jobs) == ['enhance_faces', 'enhance_photos', 'enhance_video']
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in jobs} == {('device', 2)}


@pytest.mark.slow
def test_faces_whose_outputs_overflow_are_problems_not_black_images(tmp_path, broken_checkpoint):
    light = RELEASED_MODELS['sparnet_light_attn3d']
    weights = tmp_path / 'weights'
    weights.mkdir()
    os.replace(broken_checkpoint('sparnet_light_attn3d', 'overflow'), weights / light.file_name)
    Image.fromarray(face_images(1, seed=3, size=(16, 16))[0]).save(tmp_path / 'face.png')
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, weights_dir=str(weights))
    result = pipeline.enhance_faces([str(tmp_path / 'face.png')], 'sparnet_light_attn3d', 'fp32', 'png')
    assert result.items == []
    assert result.problems == ["face: the network's output holds NaN or infinite values (weights that overflow, an "
                               "fp16 overflow: try --precision fp32, or a broken --onnx_model); nothing written"]


def run_app(argv):
    """`python app.py *argv` in this process, stopped before it serves: (exit code, its stderr)."""
    return run_in_process(app_main, argv, 'app.py')


@pytest.fixture
def model_files(tmp_path, released_checkpoint, realesrgan_standin):
    """A folder as `--models` takes it: a Real-ESRGAN x2 stand-in, a text file, and a train.py run's folder holding
    its latest_net_G.pth (SPARNet-Light)."""
    folder = tmp_path / 'models'
    (folder / 'light_run').mkdir(parents=True)
    os.link(released_checkpoint('sparnet_light_attn3d'), folder / 'light_run' / 'latest_net_G.pth')
    os.link(realesrgan_standin(2), folder / 'x2.pth')
    (folder / 'notes.txt').write_text('not a model')
    return folder


@pytest.mark.slow
def test_models_are_classified_and_offered_by_their_file_names(tmp_path, model_files, released_checkpoint):
    (model_files / 'hd_run').mkdir()
    os.link(released_checkpoint('sparnethd_attn2d'), model_files / 'hd_run' / 'latest_net_G.pth')
    added = added_models([str(model_files / 'x2.pth'), str(model_files / 'light_run'), str(model_files / 'hd_run'),
                          'gfpgan_v1.4', str(model_files / 'x2.pth')])
    assert [(model.label, model.kind, model.scale) for model in added] == [
        ('gfpgan_v1.4', 'face', 1), ('x2.pth', 'background', 2),
        (os.path.join('light_run', 'latest_net_G.pth'), 'sparnet', 1),
        (os.path.join('hd_run', 'latest_net_G.pth'), 'sparnethd', 1)]
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, added=added)
    assert pipeline.photo_models == ('sparnethd_attn2d', 'sparnethd_attn3d', 'gfpgan_v1.4',
                                     os.path.join('hd_run', 'latest_net_G.pth'))
    assert pipeline.face_models[-2:] == tuple(os.path.join(run, 'latest_net_G.pth') for run in ('light_run', 'hd_run'))
    assert pipeline.backgrounds == ('none', 'realesrgan_x2plus', 'realesrgan_x4plus', 'x2.pth')


def test_a_model_that_fits_nothing_stops_the_app_in_one_line(tmp_path, model_files):
    torch.save({'conv.weight': torch.zeros(3, 3, 3, 3)}, model_files / 'bogus.pth')
    results = ['--results_dir', str(tmp_path / 'results')]
    for models, message in [
        ([str(model_files / 'bogus.pth')], f'--models {model_files}/bogus.pth: spandrel .* recognises no '
                                           r'architecture in this file \(keys conv.weight\); give a checkpoint of '
                                           r'train.py \(SPARNet, SPARNetHD\), or a face restorer or a super-resolution '
                                           'model spandrel supports'),
        ([str(model_files)], f'--models {model_files}/bogus.pth: spandrel'),  # a folder: each of its files checked
        (['nowhere.pth'], '--models nowhere.pth: no such file, folder or model name; --models takes checkpoints of '
                          r'train.py, face restorers and super-resolution models spandrel loads \(gfpgan_v1.3, '),
        ([str(model_files / 'light_run'), 'codeformer'],
         r'--models codeformer: CodeFormer is under the S-Lab License 1.0 \(non-commercial use only\); pass '
         '--codeformer_noncommercial to accept it, or leave it out'),
        ([str(model_files / 'light_run' / 'latest_net_G.pth'), str(tmp_path)],
         f'--models {tmp_path}: a folder without any .pth or .safetensors file'),
    ]:
        proc = run_app(['--models', *models, *results])
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and re.fullmatch(f'error: {message}.*', lines[0]), lines
        assert not (tmp_path / 'results').exists()


@pytest.mark.slow
def test_added_models_run_as_the_command_line(tmp_path, model_files, face_restorer_standin, one_torch_thread):
    """A face restorer and a background upsampler of --models on a photo, and a checkpoint of train.py on an aligned
    face: the results of test_enhance_single_unalign.py and test.py with the same files."""
    restoreformer = face_restorer_standin('restoreformer')
    added = added_models([restoreformer, str(model_files / 'x2.pth'), str(model_files / 'light_run')])
    pipeline = AppPipeline(str(tmp_path / 'run'), gpus=0, added=added)
    photo = tmp_path / 'astronaut.png'
    Image.fromarray(data.astronaut()[:320, 96:416]).save(photo)
    with pytest.raises(JobError, match=re.escape('the background upsampler x2.pth enlarges 2x, which cannot give an '
                                                 'upscale of 3 (upscales it gives: 2); choose another upscale or '
                                                 'background upsampler')):
        pipeline.enhance_photos([str(photo)], 'restoreformer.pth', 'hog', 3, 'fp32', 'png', 'x2.pth')
    result = pipeline.enhance_photos([str(photo)], 'restoreformer.pth', 'hog', 2, 'fp32', 'png', 'x2.pth')
    assert result.problems == [] and len(result.items[0].faces) == 1
    out = tmp_path / 'script'
    assert run_whole_photos(['--gpus', '0', '--face_model', restoreformer, '--bg_upsampler',
                             str(model_files / 'x2.pth'), '--detector', 'hog', '--test_upscale', '2', '--ext', 'png',
                             '--face_batch_size', '1', '--test_img_path', str(photo), '--results_dir', str(out)]) == 0
    final = read(result.items[0].after)
    assert final.shape == (640, 640, 3)
    # the script sets its own thread count: sums in another order, a level apart here and there
    for page_file, script_file in ((result.items[0].after, out / 'hq_final.png'),
                                   (result.items[0].faces[0][1], out / 'HQ' / '000.png')):
        assert np.abs(read(page_file).astype(int) - read(script_file)).max() <= 1
    bicubic = np.asarray(Image.open(photo).resize((640, 640), Image.BICUBIC))
    assert np.abs(final[:100].astype(int) - bicubic[:100]).mean() > 3  # the upsampler's background

    face = tmp_path / 'faces' / 'face.png'
    face.parent.mkdir()
    Image.fromarray(face_images(1, seed=3, size=(16, 16))[0]).save(face)
    enhanced = pipeline.enhance_faces([str(face)], 'latest_net_G.pth', 'fp32', 'png')
    assert run_test_py(['--gpus', '0', '--pretrain_model_path', str(model_files / 'light_run' / 'latest_net_G.pth'),
                        '--dataroot',
                        str(face.parent), '--save_as_dir', str(tmp_path / 'test_py'), '--num_threads', '0']) == 0
    np.testing.assert_array_equal(read(enhanced.items[0].after), read(tmp_path / 'test_py' / 'face.png'))
