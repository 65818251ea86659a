"""Running a training loop: stop signals that save first, deterministic algorithms, iteration timing."""
import contextlib
import logging
import signal
import time

import torch

log = logging.getLogger('train')
STOP_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopSignals:
    """Ctrl-C and SIGTERM ask to stop after the current iteration; a second Ctrl-C aborts at once."""

    def __init__(self, announce=True):
        self.announce = announce

    def __enter__(self):
        self.received = None
        self.previous = {signum: signal.signal(signum, self._handle) for signum in STOP_EXIT_CODES}
        return self

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        if self.announce:
            log.warning('%s: stopping after this iteration, once `latest` is saved (Ctrl-C again aborts)',
                        signal.Signals(signum).name)

    def __exit__(self, *exc_info):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def algorithms(deterministic):
    """Deterministic algorithms (bit-exact on the CPU; on GPUs, warnings for ops without one) or fast ones."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = deterministic, not deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2:]


class IterationTimer:
    """Mean seconds per iteration between two laps (data loading included)."""

    def __init__(self, iteration):
        self.start, self.iteration = time.perf_counter(), iteration

    def lap(self, iteration):
        now = time.perf_counter()
        seconds = (now - self.start) / max(1, iteration - self.iteration)
        self.start, self.iteration = now, iteration
        return seconds
