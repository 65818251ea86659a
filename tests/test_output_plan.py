"""utils.output_plan: what a run writes is checked against its inputs and against itself before any work, and
claimed while it runs (a second run into the same folders is refused; leftovers only of dead writers go)."""
import os
import re
import subprocess
import sys

import pytest

from helpers.commands import project_env
from utils.atomic import LockedTemporary
from utils.cli import UserError
from utils.image_io import is_image_file
from utils.output_plan import OutputPlan

FACES = re.compile(r'\d{3}\.jpg')


@pytest.fixture
def folders(tmp_path):
    (tmp_path / 'in').mkdir()
    for name in ('a.png', 'a.gif', 'b.png'):
        (tmp_path / 'in' / name).write_bytes(b'input ' + name.encode())
    return tmp_path


def plan_of(root, *outputs, families=()):
    """A plan reading root/in (its images) and writing `outputs` ((flag, relative path) pairs) and `families`
    ((source, folder, prefix) triples, tail FACES)."""
    plan = OutputPlan()
    plan.reads_folder('--in', str(root / 'in'), is_image_file)
    for flag, path in outputs:
        plan.writes_file(flag, str(root / path))
    for source, folder, prefix in families:
        plan.writes_family(source, str(root / folder), prefix, FACES)
    return plan


@pytest.mark.parametrize('outputs, message', [
    ([('--json', 'in/a.png')], '--json {root}/in/a.png is inside --in {root}/in, where such files are read as inputs'),
    ([('--json', 'in/new.png')], 'where such files are read as inputs'),
    ([('--json', 'in')], '--json {root}/in is a folder; give the path of a file'),
    ([('--json', 'out/m.json'), ('--csv', 'out/m.json')],
     '--json {root}/out/m.json and --csv {root}/out/m.json would be written to {root}/out/m.json; choose another'),
    ([('--json', 'out/m.json'), ('--csv', 'out')], '--csv {root}/out is also a folder that --json'),
    ([('--json', 'in/a.png/x.json')], '--json {root}/in/a.png/x.json: cannot be created, {root}/in/a.png is a file'),
], ids=['input', 'read_as_input', 'folder', 'two_flags', 'file_and_folder', 'through_a_file'])
def test_outputs_onto_inputs_or_onto_each_other_are_refused(folders, outputs, message):
    plan = plan_of(folders, *outputs)
    with pytest.raises(UserError, match=re.escape(message.format(root=folders))):
        plan.check()


def test_files_beside_the_inputs_that_are_not_read_are_allowed(folders):
    plan_of(folders, ('--json', 'in/metrics.csv'), ('--csv', 'out/scores.csv')).check()


def test_an_input_file_reached_by_another_path_is_an_input(folders):
    os.link(folders / 'in' / 'a.png', folders / 'hard.png')
    os.symlink(folders / 'hard.png', folders / 'link.png')
    plan = OutputPlan()
    plan.reads_file('--weights', str(folders / 'hard.png'))
    plan.writes_file('--json', str(folders / 'link.png'))  # a link to it
    with pytest.raises(UserError, match=f'--json {folders}/link.png is --weights {folders}/hard.png: the input'):
        plan.check()
    plan = OutputPlan()
    plan.reads_file('--weights', str(folders / 'in' / 'a.png'))
    plan.writes_file('--json', str(folders / 'hard.png'))  # the same file under another name (a hard link)
    with pytest.raises(UserError, match=f'--json {folders}/hard.png is --weights {folders}/in/a.png'):
        plan.check()


def test_two_inputs_with_one_output_are_named_together(folders):
    plan = OutputPlan()
    plan.writes_folder('--out', str(folders / 'out'))
    plan.writes_files([(str(folders / 'in' / name), str(folders / 'out' / out))
                       for name, out in (('a.gif', 'a.png'), ('a.png', 'a.png'), ('b.png', 'b.png'))])
    with pytest.raises(UserError, match=re.escape(
            f'the output of {folders}/in/a.gif and the output of {folders}/in/a.png would be written to '
            f'{folders}/out/a.png; rename one of the two inputs')):
        plan.check()


@pytest.mark.parametrize('outputs, families, message', [
    ([('--report', 'out/p/007.jpg')], [('p.jpg', 'out/p', '')], '--report {root}/out/p/007.jpg would be written'),
    ([], [('p.jpg', 'out/p', ''), ('p.png', 'out/p', '')],
     'the output of p.jpg and the output of p.png would be written into {root}/out/p (...); rename one'),
    ([('--video', 'out/p')], [('p.jpg', 'out/p', '')],
     '--video {root}/out/p is also a folder that the output of p.jpg'),
], ids=['file_in_family', 'two_families', 'family_folder_as_file'])
def test_families_of_files_meet_no_other_output(folders, outputs, families, message):
    with pytest.raises(UserError, match=re.escape(message.format(root=folders))):
        plan_of(folders, *outputs, families=families).check()
    plan_of(folders, ('--report', 'out/p/07.jpg'), families=[('p.jpg', 'out/p', '')]).check()  # not a family name


def test_an_input_among_a_family_is_refused(folders):
    plan = OutputPlan()
    plan.reads_file('--photo', str(folders / 'in' / 'a.png'))
    plan.writes_family(str(folders / 'in' / 'a.png'), str(folders / 'in'), '', re.compile(r'[ab]\.png'))
    with pytest.raises(UserError, match='is one of the files its own results replace in'):
        plan.check()


def test_output_folders_apart_from_input_folders_and_each_other(folders):
    for out, message in (('in', 'is the same folder as --in'), ('in/sub', 'is inside --in'), ('.', 'contains --in')):
        plan = plan_of(folders)
        plan.writes_folder('--out', str(folders / out))
        with pytest.raises(UserError, match=message):
            plan.check()
    plan = plan_of(folders)
    plan.writes_folder('--out', str(folders / 'out'))
    plan.writes_folder('--logs', str(folders / 'out' / 'logs'))
    with pytest.raises(UserError, match='--out .* contains --logs .*: the two kinds of outputs would mix'):
        plan.check()


CLAIM = """import sys
from utils.cli import UserError
from utils.output_plan import OutputPlan
plan = OutputPlan()
plan.writes_folder('--results_dir', sys.argv[1])
try:
    with plan.claimed():
        print('claimed')
except UserError as err:
    print(err)
"""


def claim_in_another_process(folder):
    result = subprocess.run([sys.executable, '-c', CLAIM, str(folder)], capture_output=True, text=True,
                            env=project_env(), timeout=60)
    return result.stdout.strip()


def test_a_claimed_folder_refuses_another_run_above_in_or_below_it(folders):
    first = OutputPlan()
    first.writes_folder('--out', str(folders / 'out' / 'run'))
    with first.claimed():
        for other in ('out/run', 'out', 'out/run/sub', '.'):
            assert claim_in_another_process(folders / other) == \
                f'--results_dir {folders / other}: another run is writing into ' + \
                ('it' if other != 'out/run/sub' else str(folders / 'out' / 'run')) + \
                '; wait until it ends, or choose another output folder'
        assert claim_in_another_process(folders / 'out' / 'other') == 'claimed'
        inner = OutputPlan()  # a run this one starts in this process (reproduce.py runs test.py)
        inner.writes_folder('--save_as_dir', str(folders / 'out' / 'run' / 'model'))
        with inner.claimed():
            pass
    assert claim_in_another_process(folders / 'out' / 'run') == 'claimed'  # released at the end of the first run


def test_claiming_creates_the_folders_and_removes_them_if_nothing_was_written(folders):
    plan = OutputPlan()
    plan.writes_folder('--out', str(folders / 'new' / 'deeper'))
    with plan.claimed():
        assert (folders / 'new' / 'deeper').is_dir()
    assert not (folders / 'new').exists()
    with plan.claimed():
        (folders / 'new' / 'deeper' / 'result.png').write_bytes(b'x')
    assert (folders / 'new' / 'deeper' / 'result.png').exists()


def test_leftovers_of_dead_writers_go_and_those_of_live_ones_stay(folders):
    out = folders / 'out'
    out.mkdir()
    (out / 'p').mkdir()
    plan = OutputPlan()
    plan.writes_files([('in/a.png', str(out / 'a.png'))])
    plan.writes_family('p.jpg', str(out / 'p'), '', FACES)
    dead = [f'{out}/a.png.4242-0badcafe.part', f'{out}/p/001.jpg.4242-0badcafe.part']
    for path in dead:
        open(path, 'wb').close()
    live = LockedTemporary(out / 'a.png')  # another run still writing it
    others = [f'{out}/b.png.4242-0badcafe.part', f'{out}/p/notes.txt.4242-0badcafe.part', f'{out}/a.png.part']
    for path in others:
        open(path, 'wb').close()
    try:
        with plan.claimed(lock=False):
            pass
        left = sorted(str(path) for path in out.rglob('*') if path.is_file())
        assert left == sorted([live.path, *others])
    finally:
        live.discard()
