"""The web page in a real browser: app.py in its own process with stand-in weights from a local server,
driven by headless Chromium through Playwright.

Skipped when Gradio, Playwright or a Chromium is missing (`make test` installs requirements-app.txt;
.ci/run installs Debian's chromium). Screenshots of every step are saved in the test's tmp_path.
"""
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import av
import numpy as np
import pytest
from PIL import Image
from skimage import data

from helpers.app_server import free_port, wait_until_serving
from helpers.clips import astronaut_frames, write_clip
from helpers.commands import ROOT
from weights.released import RELEASED_MODELS

pytest.importorskip('gradio', reason='the web page needs Gradio: pip install -r requirements-app.txt')
sync_api = pytest.importorskip('playwright.sync_api', reason='pip install -r requirements-app.txt (Playwright)')
CHROMIUM = next(filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason='no Chromium on PATH (Debian: apt-get install chromium)')

CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync']
JOB_SECONDS = 600  # a face restorer at 512x512 on a busy 2-core CPU


@pytest.fixture
def app_server(tmp_path, weights_server, released_checkpoint, realesrgan_standin, face_restorer_standin):
    """app.py on a free port of 127.0.0.1 (CPU, 1 MB uploads), run from an empty folder with its own TMPDIR; --models
    adds a train.py checkpoint (SPARNet-Light), a RestoreFormer and a Real-ESRGAN x2 stand-in."""
    for folder in ('cwd', 'tmp', 'results', 'models'):
        (tmp_path / folder).mkdir()
    os.link(released_checkpoint('sparnet_light_attn3d'), tmp_path / 'models' / 'latest_net_G.pth')
    models = [face_restorer_standin('restoreformer'), realesrgan_standin(2), str(tmp_path / 'models')]
    port = free_port()
    env = {**os.environ, 'TMPDIR': str(tmp_path / 'tmp'), 'OMP_WAIT_POLICY': 'PASSIVE'}
    log = open(tmp_path / 'app.log', 'w+')
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'app.py'), '--gpus', '0', '--port', str(port),
                                '--results_dir', str(tmp_path / 'results'), '--max_upload_mb', '1',
                                '--models', *models],
                               cwd=tmp_path / 'cwd', env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_serving(process, f'http://127.0.0.1:{port}/')
        yield process, f'http://127.0.0.1:{port}', log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        log.close()


@pytest.fixture
def browser_page(tmp_path):
    """A Chromium page (fresh profile) whose requests to anything but 127.0.0.1 are refused and recorded."""
    elsewhere = []

    def local_only(route):
        url = route.request.url
        if url.startswith(('http://127.0.0.1:', 'data:', 'blob:')):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / 'chromium_profile'), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={'width': 1280, 'height': 900})
        try:
            page = context.new_page()
            page.route('**/*', local_only)
            page.set_default_timeout(60_000)
            yield page, elsewhere
        finally:
            context.close()


def fetch(page, link):
    """The bytes behind a download link of the page."""
    response = page.request.get(link.get_attribute('href'))
    assert response.ok, response.status
    return response.body()


def loaded_images(page, selector):
    """Natural (width, height) of the images under `selector` that the browser has decoded."""
    return page.eval_on_selector_all(
        f'{selector} img', 'images => images.filter(i => i.complete && i.naturalWidth > 0)'
                           '.map(i => [i.naturalWidth, i.naturalHeight])')


def wait_for_images(page, selector, count):
    page.wait_for_function('([selector, count]) => [...document.querySelectorAll(selector + " img")]'
                           '.filter(i => i.complete && i.naturalWidth > 0).length >= count', arg=[selector, count])


def run_job(page, button, status, done):
    """Click `button`; the progress texts the page showed until the `status` element holds `done`."""
    page.locator(button).click()
    progress, deadline = set(), time.monotonic() + JOB_SECONDS
    while not page.locator(status, has_text=done).count():
        assert time.monotonic() < deadline, f'{done!r} not shown within {JOB_SECONDS} s'
        progress.update(page.locator('.progress-text, .meta-text').all_inner_texts())
        time.sleep(0.05)
    return progress


def first_frame(page, selector):
    """(duration, width, mean level of the first frame) of the <video> under `selector`, once Chromium has decoded
    that frame (readyState 2: metadata, then the current frame)."""
    return page.wait_for_function(
        "selector => { const video = document.querySelector(selector + ' video');"
        "  if (!video || video.readyState < 2) return false;"
        "  const canvas = Object.assign(document.createElement('canvas'),"
        "                               {width: video.videoWidth, height: video.videoHeight});"
        "  const context = canvas.getContext('2d');"
        "  context.drawImage(video, 0, 0);"
        "  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;"
        "  let sum = 0;"
        "  for (let i = 0; i < pixels.length; i += 4) sum += pixels[i] + pixels[i + 1] + pixels[i + 2];"
        "  return [video.duration, video.videoWidth, sum / (pixels.length / 4 * 3)]; }", arg=selector).json_value()


def choose(page, component, value):
    page.locator(f'#{component} [data-testid="{value}-radio-label"]').click()


def message(page, text):
    """The text of the pop-up message (gr.Warning / gr.Error) holding `text`, once shown."""
    toast = page.locator('[data-testid="toast-text"]', has_text=text)
    toast.wait_for()
    return toast.inner_text()


def close_messages(page):
    page.locator('[data-testid="toast-close"]').evaluate_all('buttons => buttons.forEach(b => b.click())')
    page.wait_for_function('!document.querySelector(\'[data-testid="toast-body"]\')')


def offered(page, component):
    """The labels of the choices of a radio component, once shown."""
    labels = page.locator(f'#{component} [data-testid$="-radio-label"]')
    labels.first.wait_for()
    return [text.strip() for text in labels.all_inner_texts()]


def upload(page, component, *paths):
    """Replace the files of an upload component by `paths`."""
    if page.locator(f'#{component} .file-preview').count():
        page.locator(f'#{component} button[aria-label="Clear"]').click()
    page.locator(f'#{component} input[type=file]').set_input_files([str(path) for path in paths])
    page.locator(f'#{component} .file-preview').wait_for()


@pytest.mark.slow
def test_photo_page_in_a_browser(tmp_path, weights_server, released_checkpoint, app_server, browser_page):
    """Weights that cannot be fetched, a photo without a face and a file over the upload limit each give a
    message in the page, then the astronaut is enhanced by a model of --models (RestoreFormer: a 512x512 face
    restorer several times cheaper than SPARNetHD, whose whole-photo run test_enhance_single_unalign.py tests end
    to end, and test_app.py through the page's code with a stand-in network) and its photo and faces are shown
    and downloadable; the models of --models reach the job by their labels (RestoreFormer with the Real-ESRGAN x2
    as background upsampler, refused at 3x); a file that is not a video is one message, and a short clip is
    enhanced by RestoreFormer frame by frame and plays in the page; aligned faces go through the Faces tab with
    the train.py checkpoint of --models. (test_app.py checks that each model of --models gives the command line's
    results.)"""
    process, url, log = app_server
    page, elsewhere = browser_page
    hd = RELEASED_MODELS['sparnethd_attn2d']
    weights_server.add_released('sparnethd_attn2d', released_checkpoint('sparnethd_attn2d'))
    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(tmp_path / 'astronaut.jpg', quality=95)
    Image.fromarray(data.chelsea()).save(tmp_path / 'cat.jpg')
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (700, 700, 3), np.uint8)).save(tmp_path / 'big.png')
    face = np.asarray(Image.fromarray(astronaut[60:220, 150:310]).resize((16, 16), Image.BICUBIC))
    Image.fromarray(face).save(tmp_path / 'face16.png')
    write_clip(tmp_path / 'clip.mp4', astronaut_frames(2))  # 320x240, 0.08 s at 25 fps
    with av.open(str(tmp_path / 'clip.mp4')) as container:
        clip_seconds = container.duration / av.time_base
    (tmp_path / 'notes.mp4').write_text('not a video')
    shots = tmp_path / 'screenshots'
    shots.mkdir()

    def screenshot(name):
        page.screenshot(path=str(shots / f'{name}.png'), full_page=True)

    page.goto(url)
    assert offered(page, 'photo_model') == ['sparnethd_attn2d', 'sparnethd_attn3d', 'restoreformer.pth']
    assert offered(page, 'photo_background') == ['none', 'realesrgan_x2plus', 'realesrgan_x4plus', 'x2.pth']
    page.locator('#photo_button').click()  # nothing uploaded yet
    assert message(page, 'Add one or more image files first') == 'Add one or more image files first.'
    screenshot('0_page')
    close_messages(page)

    # weights that cannot be fetched (the local server has no sparnethd_attn3d): one line, no traceback
    upload(page, 'photo_files', tmp_path / 'cat.jpg')
    choose(page, 'photo_model', 'sparnethd_attn3d')
    choose(page, 'photo_detector', 'hog')
    page.locator('#photo_button').click()
    assert 'could not download ' in message(page, 'sparnethd_attn3d: could not download')
    assert '(HTTP 404 Not Found); download it by hand and put it at ' in message(page, 'sparnethd_attn3d')
    screenshot('1_weights_not_fetched')
    close_messages(page)

    # a photo without a face: the first use of sparnethd_attn2d downloads it, then the message
    choose(page, 'photo_model', 'sparnethd_attn2d')
    progress = run_job(page, '#photo_button', '#photo_status', '0 of 1 photo enhanced')
    assert any('/345.1M B' in text for text in progress), progress  # the download's progress bar
    no_face = ('cat: no face found of at least 40 px (detector hog); try the other detector, or a photo where the '
               'faces are larger')
    assert no_face in page.locator('#photo_status').inner_text()
    assert message(page, 'cat: no face found') == no_face
    assert weights_server.requests == [f'/{RELEASED_MODELS["sparnethd_attn3d"].file_name}', f'/{hd.file_name}']
    screenshot('2_no_face')
    close_messages(page)

    # a file over --max_upload_mb is refused by the page
    page.locator('#photo_files button[aria-label="Clear"]').click()
    page.locator('#photo_files input[type=file]').set_input_files(str(tmp_path / 'big.png'))
    assert 'exceed the maximum allowed size of 1.0 Mb: "big.png"' in message(page, 'big.png')
    screenshot('3_too_large')
    close_messages(page)

    # the server still serves: the astronaut, with a progress bar per face while RestoreFormer runs
    upload(page, 'photo_files', tmp_path / 'astronaut.jpg')
    choose(page, 'photo_model', 'restoreformer.pth')
    progress = run_job(page, '#photo_button', '#photo_status', '1 of 1 photo enhanced (1 face)')
    assert any('0/1 face' in text for text in progress), progress  # the progress bar per face
    wait_for_images(page, '#photo_slider', 2)
    wait_for_images(page, '#photo_gallery', 2)
    screenshot('4_astronaut')

    run_dir = next(path for path in (tmp_path / 'results').iterdir())
    job = next(run_dir.glob('photos_*/astronaut.png')).parent
    assert sorted(loaded_images(page, '#photo_slider')) == [[512, 512]] * 2
    assert loaded_images(page, '#photo_gallery') == [[512, 512]] * 2
    links = {link.get_attribute('download'): link for link in page.locator('#photo_downloads a[download]').all()}
    assert sorted(links) == ['astronaut.png', 'faces.zip']
    enhanced = np.asarray(Image.open(io.BytesIO(fetch(page, links['astronaut.png']))))
    np.testing.assert_array_equal(enhanced, np.asarray(Image.open(job / 'astronaut.png')))
    photo = np.asarray(Image.open(tmp_path / 'astronaut.jpg'))
    assert np.abs(enhanced[110:140, 200:240].astype(int) - photo[110:140, 200:240]).mean() > 20  # the face changed
    np.testing.assert_array_equal(enhanced[450:], photo[450:])  # far from it, the photo as it was
    with zipfile.ZipFile(io.BytesIO(fetch(page, links['faces.zip']))) as archive:
        assert sorted(archive.namelist()) == ['astronaut/HQ/000.png', 'astronaut/LQ_faces/000.png']
        for name in archive.namelist():
            assert Image.open(io.BytesIO(archive.read(name))).size == (512, 512)

    # the models of --models reach the job by their labels: RestoreFormer with the x2 upsampler cannot give 3x
    choose(page, 'photo_background', 'x2.pth')
    choose(page, 'photo_upscale', '3')
    page.locator('#photo_button').click()
    assert 'x2.pth enlarges 2x, which cannot give an upscale of 3' in message(page, 'cannot give an upscale')
    screenshot('5_added_models')
    close_messages(page)

    # a video: a file that is not one is a message; the clip goes through RestoreFormer frame by frame and plays
    page.get_by_role('tab', name='Video').click()
    assert offered(page, 'video_model') == ['sparnethd_attn2d', 'sparnethd_attn3d', 'restoreformer.pth']
    upload(page, 'video_file', tmp_path / 'notes.mp4')
    choose(page, 'video_detector', 'hog')
    page.locator('#video_button').click()
    assert message(page, 'notes: not a video').startswith('notes: not a video FFmpeg can read (')
    close_messages(page)
    upload(page, 'video_file', tmp_path / 'clip.mp4')
    choose(page, 'video_model', 'restoreformer.pth')
    progress = run_job(page, '#video_button', '#video_status', '1 of 1 video enhanced (2 frames, 2 with faces)')
    assert any(re.search(r'\b1/2 frame', text) for text in progress), progress  # the bar counts frames
    video = next(run_dir.glob('videos_*/clip.mp4'))
    with av.open(str(video)) as container:
        level = next(container.decode(video=0)).to_ndarray(format='rgb24').mean()
    seconds, width, shown_level = first_frame(page, '#video_result')  # H.264 plays in Debian's Chromium
    assert width == 320 and abs(seconds - clip_seconds) <= 1 / 25 and abs(shown_level - level) < 3, \
        (seconds, clip_seconds, shown_level, level)
    screenshot('6_video')
    assert fetch(page, page.locator('#video_result a[download]')) == video.read_bytes()

    # aligned faces: a 16x16 face through the train.py checkpoint (SPARNet-Light), x8
    page.get_by_role('tab', name='Aligned faces').click()
    assert offered(page, 'face_model') == [*RELEASED_MODELS, 'latest_net_G.pth']
    upload(page, 'face_files', tmp_path / 'face16.png')
    choose(page, 'face_model', 'latest_net_G.pth')
    run_job(page, '#face_button', '#face_status', '1 of 1 face enhanced')
    wait_for_images(page, '#face_gallery', 2)
    assert sorted(loaded_images(page, '#face_gallery')) == [[16, 16], [128, 128]]
    links = {link.get_attribute('download'): link for link in page.locator('#face_downloads a[download]').all()}
    assert sorted(links) == ['face16.png', 'faces.zip']
    assert Image.open(io.BytesIO(fetch(page, links['face16.png']))).size == (128, 128)
    screenshot('7_faces')

    assert elsewhere == []  # the page asked nothing of any other host
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0
    log.seek(0)
    server_log = log.read()
    assert 'Traceback' not in server_log, server_log
    assert [path.name for path in (tmp_path / 'results').iterdir()] == [run_dir.name]
    # the cache is gone
    assert sorted(path.name for path in run_dir.iterdir()) == ['faces_0004', 'photos_0002', 'videos_0003']
    assert list((tmp_path / 'cwd').iterdir()) == []
    # in the system's temporary folder, only the empty compile-cache folder that importing torchvision makes
    assert [path.name for path in (tmp_path / 'tmp').iterdir()
            if not path.name.startswith('torchinductor_') or any(path.iterdir())] == []
