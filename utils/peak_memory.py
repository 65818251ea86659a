"""The peak memory a block of code adds: the CUDA allocator's peak, or the process RSS sampled every millisecond
(for the benchmarks)."""
import ctypes
import gc
import os
import threading
import time

import torch


def release_free_memory() -> None:
    """Hand the allocator's free memory back to the OS (glibc), so that RSS starts from live memory."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory a block adds: CUDA allocator peak, or the process RSS sampled every millisecond.

    On the CPU this is what the OS sees, allocator caching included, from a trimmed start.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = None

    @staticmethod
    def _rss():
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._rss())
            time.sleep(0.001)

    def __enter__(self):
        gc.collect()
        release_free_memory()
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif os.path.exists('/proc/self/statm'):
            self._base = self._peak = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2 ** 20
        elif hasattr(self, '_thread'):
            self._stop.set()
            self._thread.join()
            self.peak_mb = (max(self._peak, self._rss()) - self._base) / 2 ** 20
