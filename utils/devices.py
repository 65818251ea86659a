"""Choosing the compute device from `--gpus N` (the N GPUs with the most free memory, or the CPU),
its intra-op threads and the inference precisions it runs natively."""
import logging
import os
import platform
from collections.abc import Iterable

import torch

log = logging.getLogger(__name__)

PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


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


def free_gpu_memory() -> dict[int, int]:
    """{cuda index: free bytes} for the visible GPUs (NVML, else torch.cuda.mem_get_info)."""
    indices = list(range(torch.cuda.device_count()))
    try:
        return _free_memory_nvml(indices)
    except Exception:  # NVML missing or device not matched: ask CUDA itself
        return {index: torch.cuda.mem_get_info(index)[0] for index in indices}


def select_gpu_ids(n_gpus: int) -> list[int]:
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


def select_device(n_gpus: int) -> tuple[torch.device, list[int]]:
    """(main torch.device, list of GPU ids) for `--gpus n_gpus`."""
    gpu_ids = select_gpu_ids(n_gpus)
    if not gpu_ids:
        return torch.device('cpu'), []
    torch.cuda.set_device(gpu_ids[0])
    return torch.device('cuda', gpu_ids[0]), gpu_ids


def native_bf16_cpu() -> bool:
    """Whether this CPU does bf16 in hardware (AVX512-BF16 or AMX-BF16), as reported by PyTorch's cpuinfo.

    oneDNN also runs bf16 on plain AVX-512 by emulation, which is slower than fp32, so the
    instruction-set flags are checked rather than `torch.ops.mkldnn._is_mkldnn_bf16_supported()`.
    """
    capabilities = getattr(torch.cpu, 'get_capabilities', None)
    if capabilities is not None:
        flags = capabilities()
        return bool(flags.get('avx512_bf16') or flags.get('amx_bf16'))
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def check_precision(device: torch.device | str, precision: str) -> None:
    """Raise ValueError unless `device` runs `precision` natively."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == 'fp32':
        return
    if device.type == 'cuda':
        if precision == 'bf16' and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ValueError(f"bf16 asked for, but {torch.cuda.get_device_name(device)} has no native bf16 "
                             "(it needs compute capability 8.0 or newer): use --precision fp16 or fp32")
        return
    if device.type == 'cpu':
        if precision == 'fp16':
            raise ValueError("fp16 runs only on a GPU; on the CPU use --precision bf16 (on CPUs with "
                             "AVX512-BF16 or AMX) or fp32")
        if not native_bf16_cpu():
            raise ValueError("bf16 asked for, but this CPU has neither AVX512-BF16 nor AMX-BF16 "
                             "(torch.cpu.get_capabilities()); emulated bf16 is slower than fp32: use fp32")
        return
    raise ValueError(f"reduced precision is supported on cpu and cuda devices, not {device.type}")


def set_inference_threads(num_threads: int | None = None) -> int:
    """Use one intra-op thread per CPU this process may run on, unless OMP_NUM_THREADS says otherwise.

    PyTorch defaults to the machine's physical cores, which oversubscribes when the process is
    confined to fewer (taskset, cgroup cpusets); one thread per usable core is what the convolutions
    scale to. Returns the number of threads set.
    """
    if num_threads is None:
        env = os.environ.get('OMP_NUM_THREADS', '')
        num_threads = int(env) if env.isdigit() and int(env) > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(num_threads)
    return num_threads


def describe_device(device: torch.device | str, gpu_ids: Iterable[int] = ()) -> str:
    """'cpu, 2 threads' or 'NVIDIA A100 (cuda:0)', '2 x NVIDIA A100 (cuda:0,1)': what a run ran on."""
    device = torch.device(device)
    if device.type != 'cuda':
        return f'{device.type}, {torch.get_num_threads()} threads'
    ids = list(gpu_ids) or [device.index or 0]
    count = f'{len(ids)} x ' if len(ids) > 1 else ''
    return f"{count}{torch.cuda.get_device_name(ids[0])} (cuda:{','.join(map(str, ids))})"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
