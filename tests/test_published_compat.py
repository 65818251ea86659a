"""What the published code wrote and accepted: its checkpoint folders (`--epoch 20`, `--continue_train`), test flags."""
import logging
import os

import pytest
import torch

from models import create_model
from models.discriminator import define_D
from models.networks import GeneratorSpec, random_generator
from options.train_options import TrainOptions
from train_helpers import no_checkpoints_left  # noqa: F401 (autouse fixture)
from train_helpers import TINY_FLAGS, check_test_script_output, face_folder, read_events, run_training, train_flags
from utils.checkpoint import load_train_state
from utils.cli import UserError

pytestmark = pytest.mark.usefixtures('one_torch_thread')
HD_SPEC = GeneratorSpec('sparnethd', 1, 'spar', 'in')
SAVED_STEPS = 2


def tiny_hd_options(*extra):
    return TrainOptions().parse(['--gpus', '0', *TINY_FLAGS['sparnethd'], '--lambda_pcp', '0', *extra])


def published_adam_state(parameters, lr, beta1):
    """An Adam state as torch 1.5 saved it for the published code: integer steps, the param-group keys of then."""
    copies = [torch.nn.Parameter(p.detach().clone()) for p in parameters]
    optimizer = torch.optim.Adam(copies, lr=lr, betas=(beta1, 0.99))
    for _ in range(SAVED_STEPS):
        for p in copies:
            p.grad = torch.randn_like(p)
        optimizer.step()
    state = optimizer.state_dict()
    for values in state['state'].values():
        values['step'] = int(values['step'])
    keys_then = ('lr', 'betas', 'eps', 'weight_decay', 'amsgrad', 'params')
    state['param_groups'] = [{**{key: group[key] for key in keys_then}, 'initial_lr': lr}
                             for group in state['param_groups']]
    return state


def write_published_run(folder):
    """A SPARNetHD run of the published code stopped one batch into its second epoch, as it saved it.

    `latest_net_G/H/D.pth` (D with the published `score_out.conv2d.*` keys), `latest_opts.pth` (the Adam
    states of G and D, saved with lr 0 so that the resumed run keeps the weights) and `latest.info`.
    """
    folder.mkdir(parents=True)
    networks = {'G': random_generator(HD_SPEC, seed=1).state_dict(),
                'H': random_generator(HD_SPEC, seed=2).state_dict(), 'D': define_D(tiny_hd_options()).state_dict()}
    assert 'D_pool.1.score_out.conv2d.weight_orig' in networks['D']
    for name, state_dict in networks.items():
        torch.save(state_dict, folder / f'latest_net_{name}.pth')
    parameters = {name: [v for k, v in state_dict.items() if not k.endswith(('_u', '_v'))]
                  for name, state_dict in networks.items()}
    torch.save([published_adam_state(parameters['G'], 0.0, 0.5), published_adam_state(parameters['D'], 0.0, 0.5)],
               folder / 'latest_opts.pth')
    torch.save({'resume_epoch': 1, 'resume_iter': 1}, folder / 'latest.info')
    return networks


def test_published_run_resumes_with_continue_train(tmp_path, caplog):
    folder = tmp_path / 'checkpoints' / 'published'
    networks = write_published_run(folder)
    face_folder(tmp_path / 'faces', count=2)  # batch 1: 2 iterations per epoch; the run stopped after iteration 3
    flags = train_flags(tmp_path, 'sparnethd', 'published', '--continue_train', '--total_epochs', '2',
                        '--batch_size', '1', '--lambda_pcp', '0')
    with caplog.at_level(logging.INFO):
        assert run_training(flags) == 0
    assert f'starting at epoch 2, iteration 3 (position of {folder / "latest.info"})' in caplog.text
    assert 'resumed a run of the published code' in caplog.text and 'not restored' in caplog.text
    scalars, _ = read_events(tmp_path / 'logs' / 'published')
    assert list(scalars['loss/Pix']) == [4] and scalars['lr/lr_G'] == {4: 0.0}
    for name in ('G', 'D'):  # the saved optimizers' lr 0 kept the weights the loaded ones
        trained = torch.load(folder / f'latest_net_{name}.pth', weights_only=True)
        assert all(torch.equal(trained[k], v) for k, v in networks[name].items() if not k.endswith(('_u', '_v')))
    optimizers = load_train_state(str(folder / 'latest_train_state.pth'))['model']['optimizers']
    for name in ('G', 'D'):
        assert {float(values['step']) for values in optimizers[name]['state'].values()} == {SAVED_STEPS + 1}


def test_discriminator_of_our_earlier_key_names_loads_and_incomplete_published_folder_refused(tmp_path):
    model = create_model(tiny_hd_options('--checkpoints_dir', str(tmp_path), '--name', 'run')).setup_training(1)
    current = {k: v + 1 for k, v in model.netD.state_dict().items()}
    model.load_network_state('D', {k.replace('score_out.conv2d.', 'score_out.'): v for k, v in current.items()}, 'old')
    assert all(torch.equal(v, current[k]) for k, v in model.netD.state_dict().items())
    (tmp_path / 'run').mkdir()
    for name in ('latest_net_G.pth', 'latest_net_H.pth', 'latest_opts.pth'):
        (tmp_path / 'run' / name).write_bytes(b'')
    with pytest.raises(UserError, match="the published code's checkpoint `latest` lacks latest_net_D.pth") as err:
        model.load_published_checkpoint(str(tmp_path / 'run'), 'latest')
    assert '\n' not in str(err.value)


def test_published_epoch_file_loads_in_test_py_with_the_published_test_flags(tmp_path, monkeypatch, capsys):
    spec = GeneratorSpec('sparnet', 1, 'spar', 'bn')
    folder = tmp_path / 'checkpoints' / 'published'
    folder.mkdir(parents=True)
    torch.save(random_generator(spec).state_dict(), folder / '20_net_G.pth')  # the published name of epoch 20
    results = tmp_path / 'results'
    check_test_script_output(['--model', 'sparnet', '--res_depth', '1', '--name', 'published', '--checkpoints_dir',
                              str(tmp_path / 'checkpoints'), '--epoch', '20', '--results_dir', str(results),
                              '--phase', 'val', '--scale_factor', '4', '--eval', '--num_test', '5', '--verbose'],
                             folder / '20_net_G.pth', spec, tmp_path, monkeypatch,
                             out_dir=results / 'published' / 'val_20')
    assert '[Network G]' in capsys.readouterr().out
