"""Training on several devices: torchrun processes with DistributedDataParallel, else DataParallel.

Under `torchrun --nproc_per_node N`, each process drives the GPU of its LOCAL_RANK (NCCL), or the
CPU (gloo) when there is no GPU or `--gpus 0`. Without torchrun, `--gpus N` (N > 1) splits each
batch over the N chosen GPUs with DataParallel, as the published code did.
"""
import logging
import os

import torch
import torch.distributed as dist
from torch import nn

from utils.cli import UserError

log = logging.getLogger(__name__)
TORCHRUN_VARIABLES = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def setup(opt, timeout=None, cpu_objects=False):
    """Set `opt.rank`, `opt.world_size`; under torchrun also this process's device and the process group.

    `timeout` (a timedelta) bounds every collective; `cpu_objects` adds gloo beside NCCL on GPUs, so
    that Python objects (run summaries) are exchanged on the CPU.
    """
    opt.rank, opt.world_size = 0, 1
    if not launched_by_torchrun():
        return opt
    opt.rank, opt.world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    local_rank = int(os.environ['LOCAL_RANK'])
    if opt.gpus > 0 and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"torchrun started more processes per node than the {torch.cuda.device_count()} "
                            "GPUs; lower --nproc_per_node")
        opt.device, opt.gpu_ids = torch.device('cuda', local_rank), [local_rank]
        backend = 'cpu:gloo,cuda:nccl' if cpu_objects else 'nccl'
        torch.cuda.set_device(opt.device)
    else:
        opt.device, opt.gpu_ids, backend = torch.device('cpu'), [], 'gloo'
    if opt.world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout)
    return opt


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def wrap(net, opt):
    """`net` as trained on the devices of `opt`: DDP under torchrun, DataParallel on several GPUs."""
    if is_distributed():
        if getattr(opt, 'sync_bn', False):
            if opt.device.type == 'cuda':
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            else:
                log.warning('--sync_bn needs GPUs: on the CPU each process normalises its own batch')
        device_ids = [opt.device.index] if opt.device.type == 'cuda' else None
        return nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    if len(opt.gpu_ids) > 1:
        return nn.DataParallel(net, device_ids=opt.gpu_ids)
    return net


def barrier() -> None:
    """Wait for every process (e.g. for the main one to finish saving before all exit)."""
    if is_distributed():
        dist.barrier()


def any_process(flags, device):
    """Each flag true if it is true in any process (all processes must call this together)."""
    if not is_distributed():
        return [bool(flag) for flag in flags]
    values = torch.tensor([float(flag) for flag in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(value) for value in values.tolist()]
