"""The writer threads: jobs run as in the caller's context, errors raised once all are done."""
import contextvars

import pytest

from utils.write_pool import WritePool

CALLER = contextvars.ContextVar('caller', default=None)


@pytest.mark.parametrize('threads', [0, 2])
def test_jobs_see_the_context_they_were_submitted_in(threads):
    """As the web page's progress tracker, which Gradio keeps in a context variable of the job's thread."""
    seen = []
    with WritePool(threads) as pool:
        for caller in ('a', 'b'):
            CALLER.set(caller)
            pool.submit(lambda expected: seen.append((expected, CALLER.get())), caller)
    assert sorted(seen) == [('a', 'a'), ('b', 'b')]


def test_an_error_of_a_job_is_raised_by_close():
    pool = WritePool(1)
    pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        pool.close()
