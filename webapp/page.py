"""The web page (Gradio Blocks): Photos, Video and Aligned faces tabs, their choices, results and messages.

Photos tab: the pipeline of test_enhance_single_unalign.py (detect, align, enhance with SPARNetHD,
paste back); Video tab: the same pipeline over every frame of a video, as that script runs it on one;
Faces tab: that of test.py. The jobs themselves are in webapp/jobs.py; no Gradio
import happens before `import_gradio` names the run's cache folder.
"""
import html
import importlib
import importlib.util
import logging
import os
import secrets
import shutil

from faces.detector import DETECTORS
from upsamplers.background import NONE
from utils.cli import UserError
from video.reader import VIDEO_EXTENSIONS
from webapp.jobs import OUTPUT_FORMATS, PHOTO_MODELS, UPSCALES
from weights.released import DEFAULT_PHOTO_MODEL, RELEASED_MODELS

gr = None  # gradio, imported by main() once GRADIO_TEMP_DIR names the run's cache (read on import)

log = logging.getLogger('app')

GRADIO_TEMP_ENV = 'GRADIO_TEMP_DIR'
CACHE_FOLDER = 'gradio_cache'  # in the run folder: uploads and links to the results served; removed at exit
CACHE_CLEANING = (3600, 86400)  # every hour, Gradio deletes the uploads older than a day
FACE_MODEL_DEFAULT = 'sparnet'

INTRO = """# SPARNet face enhancement
Faces are found in your photos (dlib), aligned to the FFHQ template, restored by SPARNetHD and pasted back.
Everything runs on this machine; the released weights of a model (about 350 MB for SPARNetHD) are downloaded
once, on first use."""
PHOTO_NOTE = ('Only SPARNetHD runs on photos: the SPARNet (x8) models super-resolve 16x16 faces to 128x128, '
              'which faces cut out of a photo are not. Use them in the *Aligned faces* tab.')
BACKGROUND_INFO = ('used when Upscale is over 1: a super-resolution network enlarges the photo instead of bicubic '
                   "interpolation (Real-ESRGAN's weights are downloaded once, on first use)")
ADDED_INFO = 'added with app.py --models: '
VIDEO_NOTE = ('Every frame goes through the pipeline of the Photos tab, the faces followed from frame to frame so '
              'that they do not jitter. The result is H.264 in MP4 with the timing and sound of the input.')
FILES_MISSING = 'Add one or more image files first.'
VIDEO_MISSING = 'Add a video file first.'
FACES_NOTE = ('Faces already cropped and aligned: 16x16 faces for `sparnet` and `sparnet_light_attn3d` (x8 to '
              '128x128), 512x512 FFHQ-aligned faces for the `sparnethd` models (make them from photos with '
              '`python -m scripts.align_and_crop_dir`). Each face is first resized to the network\'s input size '
              '(128 or 512) with bicubic interpolation, as test.py does.')


def served(path):
    """A link to `path` in Gradio's cache, where the page may serve it (the run folder itself is not served)."""
    cache = os.environ[GRADIO_TEMP_ENV]
    if os.path.commonpath([cache, os.path.abspath(path)]) == cache:
        return path
    target = os.path.join(cache, secrets.token_hex(16), os.path.basename(path))
    os.makedirs(os.path.dirname(target))
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    return target


def page_error(message):
    return gr.Error(html.escape(message), duration=None, print_exception=False)


def run_job(job, given, *choices, missing=FILES_MISSING):
    """`job(given, *choices)` (`given`: the files, or the file, uploaded); its problems as warnings, and any failure
    as one message in the page (`missing` when nothing was uploaded)."""
    if not given:
        raise page_error(missing)
    try:
        result = job(given, *choices)
    except UserError as err:
        raise page_error(str(err)) from err
    except Exception as err:  # a bug, or out of memory: one line in the page, the traceback in the server's log
        log.exception('the job failed')
        raise page_error(f'the job failed ({err.__class__.__name__}: {err}); the server log has the details') from err
    for problem in result.problems:
        gr.Warning(html.escape(problem))
    return result


def count(number, noun):
    return f"{number} {noun}{'' if number == 1 else 's'}"


def status_text(result, asked, noun, detail=''):
    """Markdown: what was done, where the files are, and each input that could not be done."""
    lines = [f'**{len(result.items)} of {count(asked, noun)} enhanced**{detail} in {result.seconds:.1f} s'
             + (f'; files in `{result.folder}`' if result.items else '')]
    lines += [f'- {html.escape(problem)}' for problem in result.problems]
    return '\n'.join(lines)


def downloads(result):
    """The enhanced files, then faces.zip; None when there is nothing."""
    files = [item.after for item in result.items] + ([result.zip_path] if result.zip_path else [])
    return [served(path) for path in files] or None


def photo_outputs(result, asked):
    """(slider, photo chooser, gallery, downloads, shown pairs, status) for the Photos tab."""
    pairs = [(item.name, served(item.before), served(item.after)) for item in result.items]
    gallery = [(served(path), f'{item.name} #{index} {when}') for item in result.items
               for index, pair in enumerate(item.faces) for path, when in zip(pair, ('before', 'after'))]
    names = [name for name, _, _ in pairs]
    faces = sum(len(item.faces) for item in result.items)
    status = status_text(result, asked, 'photo', f" ({count(faces, 'face')})")
    chooser = gr.Dropdown(choices=names, value=names[0] if names else None, visible=len(names) > 1)
    return (pairs[0][1:] if pairs else None, chooser, gallery, downloads(result), pairs, status)


def face_outputs(result, asked):
    """(gallery, downloads, status) for the Faces tab."""
    gallery = [(served(path), f'{item.name} {when}') for item in result.items
               for path, when in ((item.before, 'before'), (item.after, 'after'))]
    status = status_text(result, asked, 'face')
    return gallery, downloads(result), status


def video_outputs(result):
    """(video shown, status) for the Video tab."""
    totals = result.totals
    detail = f" ({count(totals.frames, 'frame')}, {totals.frames_with_faces} with faces)" if totals else ''
    return served(result.items[0].after), status_text(result, 1, 'video', detail)


def precision_choice(pipeline):
    return gr.Radio(pipeline.precisions, value='fp32', label='Precision',
                    info=f'offered where this {pipeline.device.type} runs it natively; bf16 / fp16 outputs '
                         'differ from fp32 by about 1 %; int8 (SPARNets on the CPU) is quantized at its first use; '
                         'auto: the fastest this device runs')


def output_choices(pipeline):
    """(precision, output format) radios of the tabs whose results are images."""
    ext = gr.Radio(list(OUTPUT_FORMATS), value='png', label='Output format', info='png: lossless; jpg: quality 95')
    return precision_choice(pipeline), ext


def models_info(pipeline, described, offered):
    """The models' line under a model choice: the released ones of `described`, then those of --models."""
    added = [label for label in offered if label in pipeline.added]
    return '; '.join(filter(None, (' / '.join(RELEASED_MODELS[name].description.split(':')[0] for name in described),
                                   ADDED_INFO + ', '.join(added) if added else ''))) or None


def input_files(label, elem_id):
    return gr.File(label=label, file_count='multiple', file_types=['image'], elem_id=elem_id)


def result_outputs(prefix, downloads_label):
    """(before/after gallery, downloads) of a tab, their element ids starting with `prefix`."""
    gallery = gr.Gallery(label='Faces: before, after', columns=4, interactive=False, elem_id=f'{prefix}_gallery')
    downloads = gr.File(label=downloads_label, file_count='multiple', interactive=False, elem_id=f'{prefix}_downloads')
    return gallery, downloads


def photo_choices(pipeline, prefix):
    """(model, detector, upscale, background) radios of the whole-photo pipeline, shared by the Photos and Video tabs;
    their element ids start with `prefix`."""
    model = gr.Radio(list(pipeline.photo_models), value=DEFAULT_PHOTO_MODEL, label='Model',
                     elem_id=f'{prefix}_model', info=models_info(pipeline, PHOTO_MODELS, pipeline.photo_models))
    gr.Markdown(PHOTO_NOTE)
    detector = gr.Radio(list(DETECTORS), value='cnn', label='Face detector', elem_id=f'{prefix}_detector',
                        info='cnn: more robust; hog: 4 to 6 times faster on a CPU, frontal faces')
    upscale = gr.Radio(list(UPSCALES), value=1, label='Upscale', elem_id=f'{prefix}_upscale',
                       info='enlarge the whole picture before the faces are pasted back')
    background = gr.Radio(list(pipeline.backgrounds), value=NONE, label='Background upsampler',
                          elem_id=f'{prefix}_background', info=BACKGROUND_INFO)
    return model, detector, upscale, background


def photos_tab(pipeline, job_queue):
    with gr.Tab('Photos'), gr.Row():
        with gr.Column(scale=1):
            photos = input_files('Photos', 'photo_files')
            model, detector, upscale, background = photo_choices(pipeline, 'photo')
            precision, ext = output_choices(pipeline)
            enhance = gr.Button('Enhance', variant='primary', elem_id='photo_button')
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id='photo_status')
            chooser = gr.Dropdown(label='Photo shown', visible=False, interactive=True)
            slider = gr.ImageSlider(label='Before / after', type='filepath', interactive=False, elem_id='photo_slider')
            gallery, downloads = result_outputs('photo', 'Downloads: enhanced photos, faces.zip')
    shown = gr.State([])

    def enhance_photos(files, model, detector, upscale, background, precision, ext,
                       progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio finds its tracker there)
        result = run_job(pipeline.enhance_photos, files, model, detector, upscale, precision, ext, background)
        return photo_outputs(result, len(files))

    def show_photo(name, pairs):
        return next(((before, after) for shown_name, before, after in pairs if shown_name == name), None)

    enhance.click(enhance_photos, [photos, model, detector, upscale, background, precision, ext],
                  [slider, chooser, gallery, downloads, shown, status], **job_queue)
    chooser.change(show_photo, [chooser, shown], slider, queue=False)


def video_tab(pipeline, job_queue):
    with gr.Tab('Video'), gr.Row():
        with gr.Column(scale=1):
            video = gr.File(label='Video', file_types=list(VIDEO_EXTENSIONS), elem_id='video_file')
            gr.Markdown(VIDEO_NOTE)
            with gr.Row():
                start = gr.Number(0, label='Start (s)', minimum=0, elem_id='video_start')
                end = gr.Number(0, label='End (s)', minimum=0, elem_id='video_end', info='0: to the end')
            model, detector, upscale, background = photo_choices(pipeline, 'video')
            precision = precision_choice(pipeline)
            enhance = gr.Button('Enhance video', variant='primary', elem_id='video_button')
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id='video_status')
            result = gr.Video(label='Enhanced video', interactive=False, buttons=['download'], elem_id='video_result')

    def enhance_video(path, model, detector, upscale, background, precision, start, end,
                      progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio finds its tracker there)
        return video_outputs(run_job(pipeline.enhance_video, path, model, detector, upscale, precision, background,
                                     start or None, end or None, missing=VIDEO_MISSING))  # 0: the whole video

    enhance.click(enhance_video, [video, model, detector, upscale, background, precision, start, end],
                  [result, status], **job_queue)


def faces_tab(pipeline, job_queue):
    with gr.Tab('Aligned faces'), gr.Row():
        with gr.Column(scale=1):
            faces = input_files('Aligned faces', 'face_files')
            model = gr.Radio(list(pipeline.face_models), value=FACE_MODEL_DEFAULT, label='Model', elem_id='face_model',
                             info=models_info(pipeline, (), pipeline.face_models))
            gr.Markdown(FACES_NOTE)
            precision, ext = output_choices(pipeline)
            enhance = gr.Button('Enhance faces', variant='primary', elem_id='face_button')
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id='face_status')
            gallery, downloads = result_outputs('face', 'Downloads: enhanced faces, faces.zip')

    def enhance_faces(files, model, precision, ext, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio finds its tracker there)
        return face_outputs(run_job(pipeline.enhance_faces, files, model, precision, ext), len(files))

    enhance.click(enhance_faces, [faces, model, precision, ext], [gallery, downloads, status], **job_queue)


def build_page(pipeline, concurrency=1):
    """The Blocks page; the tabs' jobs share one queue of `concurrency` jobs at a time (one device)."""
    job_queue = {'concurrency_id': 'device', 'concurrency_limit': concurrency}
    with gr.Blocks(title='SPARNet face enhancement', analytics_enabled=False, delete_cache=CACHE_CLEANING) as page:
        gr.Markdown(INTRO)
        photos_tab(pipeline, job_queue)
        video_tab(pipeline, job_queue)
        faces_tab(pipeline, job_queue)
    return page


def import_gradio(cache_dir):
    """Import Gradio with its temporary files (uploads, the copies the page serves) in `cache_dir`."""
    global gr
    os.environ[GRADIO_TEMP_ENV] = cache_dir  # read on import and when the page is built
    gr = importlib.import_module('gradio')
