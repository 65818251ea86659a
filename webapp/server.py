"""Serving the web page: its run folder, Gradio\'s cache in it, the device\'s threads, until Ctrl-C or SIGTERM.

Each run of app.py writes below its own folder `<--results_dir>/<date>-<time>/`; Gradio keeps
its uploads and the copies it serves in `gradio_cache/` there, removed when the server stops.
"""
import argparse
import contextlib
import datetime
import importlib.util
import logging
import os
import shutil
import signal

from utils.cli import UserError
from utils.devices import set_inference_threads
from utils.progress import show_bars_everywhere
from webapp.added_models import added_models
from webapp.jobs import AppPipeline
from webapp.page import CACHE_FOLDER, build_page, import_gradio


def make_run_dir(results_dir: str) -> str:
    """A new folder `<results_dir>/<date>-<time>` (`-2`, `-3`, ... when that second is taken)."""
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    for attempt in range(1, 1000):
        run_dir = os.path.abspath(os.path.join(results_dir, stamp if attempt == 1 else f'{stamp}-{attempt}'))
        try:
            os.makedirs(run_dir)
            return run_dir
        except FileExistsError:
            continue
        except OSError as err:
            raise UserError(f'--results_dir {results_dir}: cannot create a folder there ({err.strerror})') from err
    raise UserError(f'--results_dir {results_dir}: no free folder name for {stamp}')


def serve(page, args, run_dir):
    """Serve `page` until Ctrl-C or SIGTERM."""
    try:
        page.launch(server_name=args.host, server_port=args.port, share=args.share,
                    max_file_size=f'{args.max_upload_mb}mb', ssr_mode=False, run_history=False,
                    footer_links=['api', 'settings'], prevent_thread_lock=True, quiet=True)
    except OSError as err:
        raise UserError(f'cannot serve on {args.host}:{args.port} ({err}); pick another --port') from err
    print(f'serving on {page.local_url}' + (f' and {page.share_url}' if page.share_url else '')
          + f' (Ctrl-C stops); results of this run: {run_dir}', flush=True)
    try:
        page.block_thread()
    finally:
        page.close()


def serve_app(args: argparse.Namespace) -> int:
    """Serve the page of `args` (app.py's options) until Ctrl-C or SIGTERM, in a new run folder; returns the
    exit code. The models of --models are checked first: a wrong one stops it in one line, before any folder."""
    if importlib.util.find_spec('gradio') is None:
        raise UserError('the web page needs Gradio: pip install -r requirements-app.txt (make app does it)')
    added = added_models(args.models, args.codeformer_noncommercial)
    run_dir = make_run_dir(args.results_dir)
    cache_dir = os.path.join(run_dir, CACHE_FOLDER)
    try:
        import_gradio(cache_dir)
        set_inference_threads()
        logging.getLogger('httpx').setLevel(logging.WARNING)  # Gradio's requests to itself, one line each
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the server as Ctrl-C does
        show_bars_everywhere()  # downloads and face searches as bars on the page, terminal or not
        pipeline = AppPipeline(run_dir, args.gpus, args.weights_dir, args.max_pixels, added,
                               args.codeformer_noncommercial)
        page = build_page(pipeline, args.concurrency)
        page.queue(default_concurrency_limit=args.concurrency)
        serve(page, args, run_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(run_dir)  # nothing was made: no empty folder left behind
    return 0
