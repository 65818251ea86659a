"""A few threads that encode and write outputs while the network computes the next batch.

Pillow and OpenCV release the GIL while they encode, so the writing overlaps the network; at
most `max_pending` jobs wait, so a slow disk holds the network back instead of filling memory.
With 0 threads the jobs run at once, in the caller's thread. Each job runs in a copy of the caller's context
(contextvars), as if it had run there: the web page's progress tracking (Gradio's) follows the bars a job updates.
"""
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class WritePool:
    """`submit(fn, *args)` runs fn on a writer thread; `close()` waits for all.

    fn handles the errors it expects (a file that cannot be written); anything else escaping it
    is a bug, raised again by `close()`.
    """

    def __init__(self, threads: int, max_pending: int | None = None) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix='writer') if threads > 0 else None
        self._slots = threading.BoundedSemaphore(max_pending or 4 * max(1, threads))
        self._errors = []

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        if self._executor is None:
            fn(*args)
            return
        self._slots.acquire()
        self._executor.submit(contextvars.copy_context().run, self._run, fn, *args)

    def _run(self, fn, *args):
        try:
            fn(*args)
        except BaseException as err:  # noqa: B036 (kept for close() to raise in the main thread)
            self._errors.append(err)
        finally:
            self._slots.release()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._errors:
            raise self._errors[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
