"""Progress of long loops: a tqdm bar in a terminal, plain periodic lines in a log file.

Outside a terminal (nohup, Slurm, CI, a pipe) a tqdm bar writes every refresh into the log, carriage
returns included. There `progress` prints a plain line instead at each tenth of the work and at
least every `LINE_SECONDS` seconds, e.g. `test: 120/1000 images (12%), 3.1 image/s, ETA 4:43`.
"""
import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Self

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

LINE_SECONDS = 60
STEPS = 10  # a line each time another tenth of the total is done


_bars_everywhere = False


def show_bars_everywhere() -> None:
    """tqdm bars even outside a terminal: the web page (app.py) shows them through Gradio's tqdm tracking."""
    global _bars_everywhere
    _bars_everywhere = True


def use_bars() -> bool:
    return _bars_everywhere or in_terminal()


def in_terminal() -> bool:
    """Whether stderr (where progress goes) is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def progress(iterable: Iterable[Any] | None = None, total: float | None = None, desc: str = '', unit: str = 'it',
             initial: float = 0, leave: bool = True, disable: bool = False,
             unit_scale: bool = False) -> 'tqdm | PlainProgress':
    """A tqdm bar in a terminal, else a `PlainProgress`; both iterate over `iterable` and count `update(n)`.

    `leave=False` marks an inner loop (the faces of a photo): its plain lines come only every
    `LINE_SECONDS`, without the tenths and the final line. A disabled one is never a tqdm bar: the web page
    (Gradio's tqdm tracking) would show it.
    """
    kwargs = dict(total=total, desc=desc, unit=unit, initial=initial, leave=leave, disable=disable,
                  unit_scale=unit_scale)
    return tqdm(iterable, **kwargs) if use_bars() and not disable else PlainProgress(iterable, **kwargs)


def logging_redirect() -> contextlib.AbstractContextManager[None]:
    """In a terminal, log lines go above the bar (tqdm's redirect); plain progress lines need nothing."""
    return logging_redirect_tqdm() if use_bars() else contextlib.nullcontext()


class PlainProgress:
    """The part of tqdm's interface the project uses, printing whole lines to stderr."""

    def __init__(self, iterable: Iterable[Any] | None = None, total: float | None = None, desc: str = '',
                 unit: str = 'it', initial: float = 0, leave: bool = True, disable: bool = False,
                 unit_scale: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        if total is None and hasattr(iterable, '__len__'):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.start_n = initial
        self.leave, self.disable, self.unit_scale = leave, disable, unit_scale
        self.clock = clock
        self.start_time = self.last_line_time = clock()
        self.last_step = self._step()
        self.postfix = ''
        self.printed_n = None

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _step(self):
        return int(STEPS * self.n / self.total) if self.total else 0

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.disable:
            return
        now, step = self.clock(), self._step()
        if (self.leave and step > self.last_step) or now - self.last_line_time >= LINE_SECONDS:
            self.print_line(now)
        self.last_step = step

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        values = {**(ordered_dict or {}), **kwargs}
        self.postfix = ', '.join(f'{key} {tqdm.format_num(value) if isinstance(value, (int, float)) else value}'
                                 for key, value in values.items())

    def close(self) -> None:
        """The last line, unless it was just printed (tqdm's final bar)."""
        if not self.disable and self.leave and self.printed_n != self.n:
            self.print_line(self.clock())
        self.disable = True

    def _amount(self, value):
        if self.unit_scale:
            return tqdm.format_sizeof(value, self.unit)
        return f'{value:g}' if isinstance(value, float) else str(value)

    def line(self, now: float) -> str:
        """E.g. `test: 120/1000 images (12%), 3.1 image/s, ETA 4:43, loss 0.12`."""
        plural = '' if self.unit_scale or self.unit == 'it' else 's'
        done = self._amount(self.n) + (f'/{self._amount(self.total)}' if self.total else '')
        if not self.unit_scale:
            done += f' {self.unit}{plural}'
        if self.total:
            done += f' ({100 * self.n / self.total:.0f}%)'
        parts = [done]
        elapsed = now - self.start_time
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0
        if rate > 0:
            parts.append(f'{tqdm.format_sizeof(rate, self.unit)}/s' if self.unit_scale else f'{rate:.3g} {self.unit}/s')
            if self.total and self.n < self.total:
                parts.append(f'ETA {tqdm.format_interval((self.total - self.n) / rate)}')
        parts.append(f'elapsed {tqdm.format_interval(elapsed)}')
        if self.postfix:
            parts.append(self.postfix)
        return (f'{self.desc}: ' if self.desc else '') + ', '.join(parts)

    def print_line(self, now: float) -> None:
        print(self.line(now), file=sys.stderr, flush=True)
        self.last_line_time, self.printed_n = now, self.n
