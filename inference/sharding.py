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

from inference.report import RunLog, combine, merge_rank_reports, skip_existing
from utils import distributed
from utils.cli import UserError


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


def run_sharded(opt, work):
    """`work(opt, shard)` in this process's Shard (torchrun or not), the process group closed after it."""
    shard = start(opt, opt.dist_timeout)
    try:
        return work(opt, shard)
    finally:
        stop()


class ShardedRun:
    """The bookkeeping test.py and the whole-photo script share, under torchrun or alone.

    Checks that every process listed the same `inputs`, gives this process its pending jobs,
    records outcomes in `log` (and the --report file), and at the end hands every process's
    outcomes to all.
    """

    def __init__(self, shard, inputs, where, report='', skip_done=False):
        self.shard = shard
        self.report = report
        self.skip_done = skip_done
        if report and shard.is_main:
            merge_rank_reports(report)  # lines left by the processes of a killed run, before new ones come
        check_same_inputs(shard, inputs, where)
        self.log = RunLog(report, shard.rank, shard.world_size)

    def pending(self, jobs):
        """This process's share of `jobs` ((input, output, ...) tuples), less those already done if skipping."""
        jobs = self.shard.take(jobs)
        return skip_existing(jobs, self.log) if self.skip_done else jobs

    def finish(self, outcome, timeout_minutes):
        """(Counter of statuses, {status: inputs}, [`outcome` of each process]) of all processes together.

        None when the others did not finish within `timeout_minutes` (said on stderr).
        """
        self.log.close()
        gathered = gather_outcomes(self.shard, (self.log.summary(), outcome), timeout_minutes)
        if gathered is None:
            return None
        if self.shard.is_main and self.report and self.shard.distributed:
            merge_rank_reports(self.report)
        counts, listed = combine(summary for summary, _ in gathered)
        return counts, listed, [outcome for _, outcome in gathered]

    def summary_suffix(self, counts, skipped_as):
        """The end of the summary line: inputs skipped (when skipping) and the number of processes."""
        existing = f', {counts["skipped"]} skipped ({skipped_as})' if self.skip_done else ''
        return existing + (f' by {self.shard.world_size} processes' if self.shard.distributed else '')


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
