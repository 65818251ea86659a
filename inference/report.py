"""What became of each input of a run: counts and failures for the summary, and the JSONL report.

With `--report FILE.jsonl`, every input gets one line as soon as its fate is known:
`{"path", "output", "status", "error", "seconds", "rank", "time"}`, status being `done`, `skipped`
(its output existed), `failed`, or `no_face` (a photo in which no face was found), written
with one `write` and flushed, so a killed run leaves an exact record of what it finished (a
line is written only after its output is complete). Lines are appended: a resumed run adds to
the report of the run it resumes. Under torchrun each process appends to its own file
(`FILE.rank<k>.jsonl`: appending to one shared file is not atomic on network file systems), and
the first process moves those lines into FILE at the end, and at the start for the files a
killed run left behind.
"""
import glob
import json
import os
import re
import threading
import time
from collections import Counter

from utils.cli import UserError

STATUSES = ('done', 'skipped', 'failed', 'no_face')
LISTED = ('failed', 'no_face')  # statuses whose inputs the summary names
REPORT_KEYS = ('path', 'status')  # what every line of a report holds


def is_report_line(line: str) -> bool:
    """Whether `line` is a line this module writes: a JSON object with a path and a known status."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and all(key in record for key in REPORT_KEYS) and record['status'] in STATUSES


def check_report_file(report: str) -> None:
    """UserError in one line, before any work, unless `--report` may be appended to: not a folder, not an existing
    file other than a report of this project (empty, or whose first line is a report line). Where it lies
    against the inputs and the other outputs is the output plan's check (`utils.output_plan`)."""
    if not report:
        return
    if os.path.isdir(report):
        raise UserError(f'--report {report}: is a folder; give the path of a .jsonl file')
    if os.path.exists(report):
        try:
            with open(report, encoding='utf-8') as handle:
                first = handle.readline()
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f'--report {report}: exists and is not a report of this project '
                            f'({err.__class__.__name__}); choose a new file name, or an earlier report to append to'
                            ) from None
        if first and not is_report_line(first):
            raise UserError(f'--report {report}: exists and is not a report of this project (its first line is no '
                            'JSON report line); choose a new file name, or an earlier report to append to')


def rank_report_path(path, rank):
    """`FILE.jsonl` -> `FILE.rank<rank>.jsonl`: the file one torchrun process appends to."""
    root, ext = os.path.splitext(path)
    return f'{root}.rank{rank}{ext}'


def merge_rank_reports(path):
    """Append the lines of every `FILE.rank<k>.jsonl` to FILE, in rank order, and delete those files.

    A line cut short by a kill (no final newline) is dropped: it was never a complete record.
    """
    root, ext = os.path.splitext(path)
    pattern = re.compile(re.escape(os.path.basename(root)) + r'\.rank(\d+)' + re.escape(ext) + '$')
    found = [(int(match.group(1)), name) for name in glob.glob(f'{glob.escape(root)}.rank*{ext}')
             if (match := pattern.match(os.path.basename(name)))]
    if not found:
        return
    with open(path, 'a', encoding='utf-8') as merged:
        for _, name in sorted(found):
            with open(name, encoding='utf-8') as part:
                lines = part.read().splitlines(keepends=True)
            merged.writelines(line for line in lines if line.endswith('\n'))
            merged.flush()
            os.remove(name)


class RunLog:
    """Thread-safe record of the outcome of each input of this process; appends report lines when asked."""

    def __init__(self, report_path=None, rank=0, world_size=1):
        self.rank = rank
        self.counts = Counter()
        self.listed = {status: [] for status in LISTED}
        self._lock = threading.Lock()
        self._file = None
        if report_path:
            path = rank_report_path(report_path, rank) if world_size > 1 else report_path
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            self._file = open(path, 'a', encoding='utf-8')

    def record(self, path, status, output=None, error=None, seconds=0.0):
        if status not in STATUSES:
            raise ValueError(f'status must be one of {STATUSES}, got {status!r}')
        line = json.dumps({'path': path, 'output': output, 'status': status, 'error': error,
                           'seconds': round(seconds, 4), 'rank': self.rank,
                           'time': time.strftime('%Y-%m-%dT%H:%M:%S%z')}) + '\n'
        with self._lock:
            self.counts[status] += 1
            if status in self.listed:
                self.listed[status].append(path)
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def summary(self):
        """Counts, failed inputs and photos without a face of this process, to send to the other processes."""
        with self._lock:
            return {'counts': dict(self.counts),
                    'listed': {status: list(paths) for status, paths in self.listed.items()}}


def combine(summaries):
    """Totals of several processes' `RunLog.summary()`: (Counter of statuses, {status: sorted inputs})."""
    counts, listed = Counter(), {status: [] for status in LISTED}
    for summary in summaries:
        counts.update(summary['counts'])
        for status, paths in summary['listed'].items():
            listed[status] += paths
    return counts, {status: sorted(paths) for status, paths in listed.items()}


def skip_existing(jobs, log):
    """The (input, output, ...) jobs whose output is not there yet; the others are recorded as skipped.

    Outputs are written to a temporary name and renamed, so an existing output is a complete one.
    """
    pending = []
    for job in jobs:
        if os.path.exists(job[1]):
            log.record(job[0], 'skipped', output=job[1])
        else:
            pending.append(job)
    return pending
