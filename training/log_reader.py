"""Reading back what a training run logged: its TensorBoard event files or its `loss_log.txt`.

Both give {tag: {iteration: value}} with TensorBoard's tags (`loss/Pix`, `lr/lr_G`,
`time/seconds_per_iteration`, `val/PSNR_G`, `val/PSNR_bicubic`...). As TensorBoard shows them,
what an interrupted run logged after the checkpoint a resumed run started from is dropped.
"""
import glob
import os
import re
import struct

from google.protobuf.message import DecodeError
from tensorboardX.proto.event_pb2 import Event, SessionLog

BASELINE = 'bicubic'  # validation scores of the network input itself: `val/PSNR_bicubic`, `val/SSIM_bicubic`
EVENT_FILES = 'events.out.tfevents.*'
TEXT_LOG = 'loss_log.txt'
_HEADER = struct.Struct('<Q')  # a TFRecord: length, its CRC, the data, the data's CRC
_PROGRESS = re.compile(r'^epoch \d+/\d+ iter (\d+) \| ([^|]*)\|(?: ([0-9.eE+-]+) s/it)?')
_VALIDATION = re.compile(r'^validation at iteration (\d+): ([^|]*)')
_RESUMED = re.compile(r'^resumed at iteration (\d+)$')


class RunLogError(Exception):
    """A log that cannot be read (truncated record, no logs in a folder)."""


def _records(path):
    """Payloads of a TFRecord file; a record cut short by a crash while writing ends the file."""
    with open(path, 'rb') as handle:
        data = handle.read()
    offset = 0
    while offset + 12 <= len(data):
        (length,) = _HEADER.unpack_from(data, offset)
        end = offset + 12 + length
        if end + 4 > len(data):
            return
        yield data[offset + 12:end]
        offset = end + 4


def _purge(series, from_step):
    """Drop the values logged at `from_step` or later (a resumed run starts there)."""
    for values in series.values():
        for step in [step for step in values if step >= from_step]:
            del values[step]


def event_files(log_dir: str | os.PathLike[str]) -> list[str]:
    """The event files of a run folder, oldest first (tensorboardX names them by creation time)."""
    return sorted(glob.glob(os.path.join(glob.escape(str(log_dir)), EVENT_FILES)))


def read_events(log_dir: str | os.PathLike[str]) -> tuple[dict[str, dict[int, float]], dict[str, list[int]]]:
    """({tag: {step: value}} of the scalars, {tag: [steps]} of the images) in the event files of `log_dir`."""
    scalars, images = {}, {}
    for path in event_files(log_dir):
        for record in _records(path):
            try:
                event = Event.FromString(record)
            except DecodeError as err:
                raise RunLogError(f'{path}: not a TensorBoard event file ({err})') from err
            if event.HasField('session_log') and event.session_log.status == SessionLog.START:
                _purge(scalars, event.step)
                images = {tag: [step for step in steps if step < event.step] for tag, steps in images.items()}
            for value in event.summary.value:
                if value.HasField('image'):
                    images.setdefault(value.tag, []).append(event.step)
                elif value.HasField('simple_value'):
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars, images


def _name_values(text):
    """'Pix 0.1 lr_G 0.0002' -> {'Pix': 0.1, 'lr_G': 0.0002}."""
    words = text.split()
    return {name: float(value) for name, value in zip(words[::2], words[1::2])}


def read_text_log(path: str) -> dict[str, dict[int, float]]:
    """{tag: {iteration: value}} from the console lines of `loss_log.txt`."""
    scalars = {}
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            line = line.strip()
            if match := _RESUMED.match(line):
                _purge(scalars, int(match.group(1)) + 1)
            elif match := _PROGRESS.match(line):
                step = int(match.group(1))
                for name, value in _name_values(match.group(2)).items():
                    group = 'lr' if name.startswith('lr_') else 'loss'
                    scalars.setdefault(f'{group}/{name}', {})[step] = value
                if match.group(3):
                    scalars.setdefault('time/seconds_per_iteration', {})[step] = float(match.group(3))
            elif match := _VALIDATION.match(line):
                for name, value in _name_values(match.group(2)).items():
                    scalars.setdefault(f'val/{name}', {})[int(match.group(1))] = value
    return scalars


def read_run(path: str, source: str = 'auto') -> dict[str, dict[int, float]]:
    """Scalars of a run: `path` is its log folder (`source` 'events', 'text', or 'auto': the events
    when there are some, else the text log) or a `loss_log.txt` file."""
    if os.path.isfile(path):
        return read_text_log(path)
    if not os.path.isdir(path):
        raise RunLogError(f'{path}: no such log folder or file')
    if source in ('auto', 'events') and event_files(path):
        return read_events(path)[0]
    text_log = os.path.join(path, TEXT_LOG)
    if source in ('auto', 'text') and os.path.isfile(text_log):
        return read_text_log(text_log)
    wanted = {'auto': f'{EVENT_FILES} or {TEXT_LOG}', 'events': EVENT_FILES, 'text': TEXT_LOG}[source]
    raise RunLogError(f'{path}: no training logs found (looked for {wanted})')
