"""Running an iterator in a thread of its own, a few items ahead of the one consuming it.

Chained, these make a pipeline whose stages overlap (decoding, face detection, the network and encoding of a
video), each holding at most `depth` items, so memory stays that of a few frames however long the input.
"""
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar('Item')
_DONE = object()
POLL_SECONDS = 0.1


def prefetch(items: Iterable[Item], depth: int = 2, name: str = 'prefetch') -> Iterator[Item]:
    """Yield the items of `items`, produced in a background thread at most `depth` ahead.

    What the producing thread raises is raised here, in order. When the consumer stops early (an error, `close()`),
    the producer stops at its next item and closes `items` in its own thread.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as err:  # noqa: B036 (handed to the consumer, who raises it)
            put((_DONE, err))
        finally:
            close = getattr(iterator, 'close', None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
