"""torchrun with 2 gloo processes on the CPU: ranks stay identical and share out the batch of one process, with
gradient accumulation (exchanged once per step)."""
import os
import subprocess
import sys

import pytest
import torch

from helpers.commands import ROOT, project_env, run_training
from helpers.faces import face_folder
from helpers.training import NARROW_SPARNETHD, assert_same_first_step, train_flags

pytestmark = pytest.mark.usefixtures('one_torch_thread', 'narrow_sparnethd')

# Runs train.py's Trainer under torchrun (with the narrow SPARNetHD of the test's own process); saves this rank's
# networks, and its Adam moments after step 1.
RANK_SCRIPT = f'''
import copy
import sys
import torch
from archs.sparnet import SIZE_SETTINGS
from options.train_options import TrainOptions
SIZE_SETTINGS['sparnethd'] = {NARROW_SPARNETHD!r}
from training.trainer import Trainer
trainer = Trainer(TrainOptions().parse(sys.argv[2:]))
model, first_step = trainer.model, []
optimize_parameters = model.optimize_parameters

def recording_step():
    optimize_parameters()
    if not first_step:
        first_step.append({{name: copy.deepcopy(opt.state_dict()) for name, opt in model.optimizers.items()}})
model.optimize_parameters = recording_step
code = trainer.run()
torch.save({{'nets': {{name: net.state_dict() for name, net in model.saved_networks().items()}},
             'first_step': first_step[0], 'world_size': trainer.opt.world_size}},
           f'{{sys.argv[1]}}/rank{{trainer.opt.rank}}.pth')
sys.exit(code)
'''
FLAGS = ['--lambda_pcp', '0', '--bottleneck_size', '16']


@pytest.mark.slow
def test_two_gloo_processes_train_identical_weights_from_the_gradient_of_one_process(tmp_path):
    """Batch 2 over 2 processes, --accum_steps 2 (2 images a process per step, the first micro-batch without an
    exchange of gradients), against one process on the 4 images, batch 2, --accum_steps 2."""
    face_folder(tmp_path / 'faces', count=4)
    script = tmp_path / 'rank_script.py'
    script.write_text(RANK_SCRIPT)
    flags = train_flags(str(tmp_path), 'sparnethd', 'ddp', *FLAGS, '--batch_size', '2', '--accum_steps', '2',
                        '--total_epochs', '2')
    result = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                             str(script), str(tmp_path), *flags], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env={**project_env(), 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f'rank{rank}.pth', weights_only=True) for rank in (0, 1)]
    assert ranks[0]['world_size'] == ranks[1]['world_size'] == 2
    for name, state_dict in ranks[0]['nets'].items():
        assert all(torch.equal(value, ranks[1]['nets'][name][key]) for key, value in state_dict.items()), name
    assert sorted(os.listdir(tmp_path / 'checkpoints' / 'ddp')) == sorted(
        f'{tag}_net_{net}.pth' for tag in ('epoch_2', 'latest') for net in 'GHD') + ['latest_train_state.pth']

    # One process on the four images, in the same micro-batches (spectral norm power-iterates at each forward), took
    # the same first step.
    assert run_training(train_flags(str(tmp_path), 'sparnethd', 'single', *FLAGS, '--batch_size', '2',
                                    '--accum_steps', '2', '--total_epochs', '1')) == 0
    single = torch.load(tmp_path / 'checkpoints' / 'single' / 'latest_train_state.pth', weights_only=True)
    assert_same_first_step(ranks[0]['first_step'], single['model']['optimizers'])
