"""Inference over many processes (torchrun): which inputs each process takes, and one summary of all.

Every process lists the inputs itself, checks that all listed the same ones, and takes every
`world_size`-th input of the sorted list from its rank on (strided): shares differ by at most
one input, and a resumed run whose done inputs form a prefix of the list stays balanced whatever
the new number of processes. Each process drives the GPU of its LOCAL_RANK, or its share of the
CPU cores. Between the start and the end the processes never wait for each other; at the end
each one hands its outcomes to all (`gather`), so every process knows the totals and exits with
the same status. The process group has a timeout: a process that stops answering makes the
others give up after it instead of waiting forever (torchrun itself stops the others at once
when one dies).
"""
import datetime
import hashlib
import os
import sys
from dataclasses import dataclass

import torch.distributed as dist

from . import distributed
from .cli import UserError


@dataclass(frozen=True)
class Shard:
    """This process's place among the processes of the run (rank 0 of 1 without torchrun)."""
    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1

    def take(self, items):
        """This process's inputs: every `world_size`-th item from position `rank` on."""
        return items[self.rank::self.world_size]

    def cpu_threads(self):
        """Intra-op threads under torchrun: the usable cores shared out between the processes of this machine.

        None (the usual default) without torchrun. torchrun sets OMP_NUM_THREADS=1, meant for
        training; inference processes get their share of the cores instead.
        """
        if not self.distributed:
            return None
        return max(1, len(os.sched_getaffinity(0)) // self.local_world_size)


class PeersLost(Exception):
    """The other processes did not answer within the process group's timeout."""


def start(opt, timeout_minutes):
    """The Shard of this process; under torchrun also its device (`opt.device`) and the process group."""
    if not distributed.launched_by_torchrun():
        return Shard()
    distributed.setup(opt, timeout=datetime.timedelta(minutes=timeout_minutes), cpu_objects=True)
    return Shard(opt.rank, opt.world_size, int(os.environ.get('LOCAL_WORLD_SIZE', opt.world_size)))


def stop():
    distributed.cleanup()


def gather(shard, obj):
    """[obj of rank 0, obj of rank 1, ...], every process calling it at the same point; PeersLost on timeout."""
    if not shard.distributed:
        return [obj]
    gathered = [None] * shard.world_size
    try:
        dist.all_gather_object(gathered, obj)
    except (RuntimeError, dist.DistError) as err:
        raise PeersLost(str(err).splitlines()[0] if str(err) else type(err).__name__) from err
    return gathered


def gather_outcomes(shard, outcome, timeout_minutes):
    """`gather(shard, outcome)`, or None (said on stderr) when the others did not finish in time."""
    try:
        return gather(shard, outcome)
    except PeersLost as err:
        print(f'process {shard.rank}: the other processes did not finish within --dist_timeout {timeout_minutes:g} '
              f'minutes ({err}); the report files hold what each process did', file=sys.stderr)
        return None


def check_same_inputs(shard, names, where):
    """UserError unless every process listed the same inputs (a folder changed while the run started)."""
    digest = hashlib.sha256('\n'.join(names).encode('utf-8', 'surrogateescape')).hexdigest()
    try:
        digests = gather(shard, (len(names), digest))
    except PeersLost as err:
        raise UserError(f'{where}: the other processes did not start ({err})') from err
    if len(set(digests)) > 1:
        counts = ', '.join(f'rank {rank}: {count}' for rank, (count, _) in enumerate(digests))
        raise UserError(f'{where}: the processes found different inputs ({counts}); the folder changed while '
                        'the run started, or it differs between machines. Start again once it is complete')
