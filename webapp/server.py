"""Serving the web page: its run folder, Gradio\'s cache in it, the device\'s threads, until Ctrl-C or SIGTERM.

Each run of app.py writes below its own folder `<--results_dir>/<date>-<time>/`; Gradio keeps
its uploads and the copies it serves in `gradio_cache/` there, removed when the server stops. Ctrl-C and
SIGTERM stop it alike: the running jobs are cancelled and waited for (their threads, FFmpeg's and torch's among
them, must end before the interpreter does, or it aborts), then the server closes; temporary files and empty
folders are removed.
"""
import argparse
import contextlib
import datetime
import importlib.util
import logging
import os
import shutil
import signal
import sys
import time

from utils.atomic import part_target
from utils.cli import UserError
from utils.devices import set_inference_threads
from utils.output_plan import OutputPlan
from utils.progress import show_bars_everywhere
from webapp.added_models import added_models
from webapp.jobs import AppPipeline
from webapp.page import CACHE_FOLDER, build_page, import_gradio

log = logging.getLogger('app')
STOP_SECONDS = 8  # running jobs get this long to stop (`docker stop` kills after 10 s)
ABANDONED_EXIT = 128 + signal.SIGTERM  # as killed by the signal: the jobs did not stop in time


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


def remove_leftovers(run_dir: str) -> None:
    """Remove the temporary files (`<name>.<pid>-<random>.part`) below the run folder and the folders left empty,
    the run folder too: nothing of a job stopped mid-way stays."""
    for folder, _, files in os.walk(run_dir, topdown=False):
        for name in files:
            if part_target(name):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def wait_for_stop(page) -> None:
    """Return on Ctrl-C or SIGTERM (or when the server ends)."""
    with contextlib.suppress(KeyboardInterrupt):
        while page.is_running:
            time.sleep(0.1)


def serve(page, args, run_dir, pipeline) -> bool:
    """Serve `page` until Ctrl-C or SIGTERM; then cancel the jobs of `pipeline`, wait up to STOP_SECONDS for them
    and close the server. False when a job was still running then."""
    try:
        page.launch(server_name=args.host, server_port=args.port, share=args.share,
                    max_file_size=f'{args.max_upload_mb}mb', ssr_mode=False, run_history=False,
                    footer_links=['api', 'settings'], prevent_thread_lock=True, quiet=True)
    except OSError as err:
        raise UserError(f'cannot serve on {args.host}:{args.port} ({err}); pick another --port') from err
    print(f'serving on {page.local_url}' + (f' and {page.share_url}' if page.share_url else '')
          + f' (Ctrl-C stops); results of this run: {run_dir}', flush=True)
    try:
        wait_for_stop(page)
    finally:
        # a second Ctrl-C during these seconds would leave the jobs' threads running as the interpreter ends
        handlers = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            running = pipeline.cancel_jobs()
            print(f'stopping: {running} running job{"" if running == 1 else "s"} cancelled, waiting up to '
                  f'{STOP_SECONDS} s for {"it" if running == 1 else "them"}', flush=True)
            stopped = pipeline.wait_for_jobs(STOP_SECONDS)
            page.close(verbose=False)
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
    return stopped


def serve_app(args: argparse.Namespace) -> int:
    """Serve the page of `args` (app.py's options) until Ctrl-C or SIGTERM, in a new run folder; returns the
    exit code, 0. The models of --models are checked first: a wrong one stops it in one line, before any folder.
    When a job has not stopped STOP_SECONDS after the signal, its temporary files are removed and the process
    exits at once with ABANDONED_EXIT (waiting for the job's thread, the interpreter could not end sooner)."""
    if importlib.util.find_spec('gradio') is None:
        raise UserError('the web page needs Gradio: pip install -r requirements-app.txt (make app does it)')
    plan = OutputPlan()
    for path in args.models:  # files; a folder's .pth and .safetensors files are never among the outputs
        if os.path.isfile(path):
            plan.reads_file('--models', path)
    plan.writes_folder('--results_dir', args.results_dir, exclusive=False)  # each run of app.py has its own folder
    plan.check()
    added = added_models(args.models, args.codeformer_noncommercial)
    run_dir = make_run_dir(args.results_dir)
    run_plan = OutputPlan()
    run_plan.writes_folder('--results_dir', run_dir)
    cache_dir = os.path.join(run_dir, CACHE_FOLDER)
    stopped = True
    try:
        with run_plan.claimed():
            stopped = serve_run(args, added, run_dir, cache_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
        remove_leftovers(run_dir)  # the run folder too when nothing was made
    if not stopped:
        log.error('jobs still running %d s after the stop were abandoned (their temporary files are removed)',
                  STOP_SECONDS)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ABANDONED_EXIT)
    return 0


def serve_run(args, added, run_dir, cache_dir):
    """Build the page and serve it from `run_dir` until stopped; False when jobs did not stop in time."""
    import_gradio(cache_dir)
    set_inference_threads()
    logging.getLogger('httpx').setLevel(logging.WARNING)  # Gradio's requests to itself, one line each
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the server as Ctrl-C does
    show_bars_everywhere()  # downloads and face searches as bars on the page, terminal or not
    pipeline = AppPipeline(run_dir, args.gpus, args.weights_dir, args.max_pixels, added,
                           args.codeformer_noncommercial)
    page = build_page(pipeline, args.concurrency)
    page.queue(default_concurrency_limit=args.concurrency)
    return serve(page, args, run_dir, pipeline)
