"""utils.prefetch: items in order from a producer thread, its errors raised in the consumer, early stops clean."""
import threading
import time

import pytest

from utils.prefetch import prefetch


def test_items_come_in_order_from_another_thread():
    threads = set()

    def produce():
        for item in range(20):
            threads.add(threading.current_thread().name)
            yield item
    assert list(prefetch(produce(), depth=3, name='producer')) == list(range(20))
    assert threads == {'producer'}


def test_the_producer_runs_at_most_depth_items_ahead():
    made = []

    def produce():
        for item in range(10):
            made.append(item)
            yield item
    items = prefetch(produce(), depth=2)
    assert next(items) == 0
    time.sleep(0.3)  # time to run ahead as far as it may
    # one handed out, two waiting in the queue, one made and waiting for room
    assert len(made) <= 4
    items.close()


def test_an_error_of_the_producer_is_raised_after_the_items_before_it():
    def produce():
        yield 1
        yield 2
        raise ValueError('broken frame')
    got = []
    with pytest.raises(ValueError, match='broken frame'):
        for item in prefetch(produce()):
            got.append(item)
    assert got == [1, 2]


def test_stopping_early_stops_and_closes_the_producer():
    closed = threading.Event()

    def produce():
        try:
            for item in range(1000):
                yield item
        finally:
            closed.set()
    items = prefetch(produce(), depth=1)
    assert next(items) == 0
    items.close()  # joins the producer thread
    assert closed.is_set()
