"""atomic_write: the final name holds the old file or the complete new one, never a part; no temporary file stays."""
import os
import threading

import pytest

from utils.atomic import LockedTemporary, atomic_write, is_abandoned, temporary_path


def test_writes_and_replaces(tmp_path):
    path = str(tmp_path / 'sub' / 'report.txt')
    with atomic_write(path, 'w', encoding='utf-8') as handle:
        handle.write('first')
    with atomic_write(path, 'w', encoding='utf-8') as handle:
        handle.write('second')
    assert open(path).read() == 'second'
    assert os.listdir(tmp_path / 'sub') == ['report.txt']


@pytest.mark.parametrize('where', ['block', 'check'])
def test_failure_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, where):
    path = str(tmp_path / 'w.bin')
    with atomic_write(path) as handle:
        handle.write(b'old')

    def refuse(tmp):
        assert open(tmp, 'rb').read() == b'half'  # the check sees the complete temporary file
        raise ValueError('refused')
    with pytest.raises((OSError, ValueError)):
        with atomic_write(path, check=refuse if where == 'check' else None) as handle:
            handle.write(b'half')
            if where == 'block':
                raise OSError('No space left on device')
    assert open(path, 'rb').read() == b'old'
    assert os.listdir(tmp_path) == ['w.bin']


def test_temporary_names_are_unique_and_beside_the_file(tmp_path):
    path = str(tmp_path / 'w.pth')
    names = {temporary_path(path) for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith(f'{path}.{os.getpid()}-') and name.endswith('.part') for name in names)


def test_concurrent_writers_leave_one_complete_file(tmp_path):
    path = str(tmp_path / 'w.bin')
    payloads = [bytes([index]) * 200_000 for index in range(8)]
    start = threading.Barrier(len(payloads))

    def write(payload):
        start.wait()
        with atomic_write(path) as handle:
            for offset in range(0, len(payload), 10_000):
                handle.write(payload[offset:offset + 10_000])
    threads = [threading.Thread(target=write, args=(payload,)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert open(path, 'rb').read() in payloads
    assert os.listdir(tmp_path) == ['w.bin']


def test_a_temporary_file_is_abandoned_only_once_its_writer_is_gone(tmp_path):
    """flock: the lock of a live writer (here another descriptor, as another process would hold) keeps its file."""
    temporary = LockedTemporary(tmp_path / 'a.png')
    assert os.path.basename(temporary.path).startswith('a.png.') and temporary.path.endswith('.part')
    assert not is_abandoned(temporary.path)
    temporary.release()  # the writer ends (a killed process releases its locks the same way)
    assert is_abandoned(temporary.path)
    temporary.discard()
    assert os.listdir(tmp_path) == []
    assert not is_abandoned(str(tmp_path / 'missing.part'))


def test_atomic_writes_hold_their_temporary_file_until_renamed(tmp_path):
    with atomic_write(str(tmp_path / 'w.bin')) as handle:
        handle.write(b'x')
        assert not is_abandoned(handle.name)
    assert os.listdir(tmp_path) == ['w.bin']
