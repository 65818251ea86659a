"""Choosing the compute device from `--gpus N`: the N GPUs with the most free memory, or the CPU."""
import logging

import torch

log = logging.getLogger(__name__)


def _free_memory_nvml(indices):
    """Free bytes per visible CUDA device, read through NVML (no CUDA context is created)."""
    import pynvml
    pynvml.nvmlInit()
    try:
        free = {}
        for index in indices:
            uuid = str(torch.cuda.get_device_properties(index).uuid)
            uuid = uuid if uuid.startswith('GPU-') else f'GPU-{uuid}'
            handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
            free[index] = pynvml.nvmlDeviceGetMemoryInfo(handle).free
        return free
    finally:
        pynvml.nvmlShutdown()


def free_gpu_memory():
    """{cuda index: free bytes} for the visible GPUs (NVML, else torch.cuda.mem_get_info)."""
    indices = list(range(torch.cuda.device_count()))
    try:
        return _free_memory_nvml(indices)
    except Exception:  # NVML missing or device not matched: ask CUDA itself
        return {index: torch.cuda.mem_get_info(index)[0] for index in indices}


def select_gpu_ids(n_gpus):
    """The `n_gpus` visible GPUs with the most free memory; [] (CPU) when none is asked for or present."""
    if n_gpus <= 0:
        return []
    if not torch.cuda.is_available():
        log.warning('--gpus %d asked for GPUs, but none is available: running on the CPU', n_gpus)
        return []
    free = free_gpu_memory()
    if n_gpus > len(free):
        log.warning('--gpus %d asked for more GPUs than the %d present: using all of them', n_gpus, len(free))
    return sorted(free, key=lambda index: -free[index])[:n_gpus]


def select_device(n_gpus):
    """(main torch.device, list of GPU ids) for `--gpus n_gpus`."""
    gpu_ids = select_gpu_ids(n_gpus)
    if not gpu_ids:
        return torch.device('cpu'), []
    torch.cuda.set_device(gpu_ids[0])
    return torch.device('cuda', gpu_ids[0]), gpu_ids
