"""Work on the next item in a background thread while the caller handles the current one."""
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar('Item')
Result = TypeVar('Result')


def one_ahead(function: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[tuple[Item, Future[Result]]]:
    """Yield (item, Future of function(item)) in order; function runs one item ahead of the caller.

    When item i is handed out, function(item i+1) is queued behind it in a single background
    thread, so at most one result waits while the caller works on the current one (its
    `.result()` re-raises what function raised). Work that releases the GIL (dlib's HOG, OpenCV,
    PyTorch) then overlaps the caller's.
    """
    items = iter(items)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix='one_ahead')
    try:
        upcoming = [(item, worker.submit(function, item)) for item in itertools.islice(items, 1)]
        while upcoming:
            current = upcoming.pop()
            upcoming = [(item, worker.submit(function, item)) for item in itertools.islice(items, 1)]
            yield current
    finally:
        worker.shutdown(wait=False, cancel_futures=True)
