"""one_ahead: the next item's work runs while the caller handles the current one, and no further."""
import threading

import pytest

from utils.one_ahead import one_ahead


class Recorder:
    """function for one_ahead: records which items started, lets the test hold or release each one."""

    def __init__(self, fail_on=None):
        self.started = {index: threading.Event() for index in range(5)}
        self.fail_on = fail_on

    def __call__(self, item):
        self.started[item].set()
        if item == self.fail_on:
            raise ValueError(f'item {item} failed')
        return item * 10


def test_results_in_order_and_errors_stay_with_their_item():
    results = []
    for item, future in one_ahead(Recorder(fail_on=2), range(5)):
        if item == 2:
            with pytest.raises(ValueError, match='item 2 failed'):
                future.result()
        else:
            results.append(future.result())
    assert results == [0, 10, 30, 40]


def test_the_next_item_runs_while_the_caller_works_and_not_the_one_after():
    recorder = Recorder()
    searches = one_ahead(recorder, range(5))
    item, future = next(searches)
    assert item == 0 and future.result() == 0
    assert recorder.started[1].wait(timeout=10)  # started while the caller still holds item 0
    assert not recorder.started[2].wait(timeout=0.2)  # one ahead only
    item, future = next(searches)
    assert item == 1 and future.result() == 10
    assert recorder.started[2].wait(timeout=10)
    searches.close()
    assert not recorder.started[3].wait(timeout=0.2)  # nothing queued after the caller stopped
