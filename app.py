"""A web page (Gradio) for enhancing the faces of photos, videos and aligned faces, with the released models.

    python app.py [--port 7860] [--results_dir results/app] [--gpus 1] ...   (`make app` installs and starts it)

It serves on 127.0.0.1 only, unless --host or --share say otherwise. Photos tab: the pipeline of
test_enhance_single_unalign.py (detect, align, enhance with SPARNetHD, paste back); Video tab: that script's
run on a video; Faces tab: that of test.py. The page is `webapp/page.py`, its jobs `webapp/jobs.py`; each run
writes below its own folder of --results_dir.
"""
from options.app_options import parse_app_args
from utils.cli import run
from webapp.server import serve_app


def main(argv=None):
    return serve_app(parse_app_args(argv))


if __name__ == '__main__':
    run(main)
