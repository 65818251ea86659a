"""What the published code wrote and accepted: its checkpoint folders (`--epoch 20`, `--continue_train`), test flags."""
import logging

import pytest
import torch

from archs.discriminator import define_D
from archs.generator_spec import GeneratorSpec, random_generator
from helpers.commands import check_test_script_output, run_training
from helpers.faces import face_folder
from helpers.training import TINY_FLAGS, train_flags
from models import create_model
from options.train_options import TrainOptions
from training.log_reader import read_events
from utils.cli import UserError
from weights.checkpoint import load_train_state

pytestmark = pytest.mark.usefixtures('one_torch_thread', 'narrow_sparnethd')
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


def write_published_checkpoint(folder, networks):
    """The `latest` checkpoint of a run of the published code stopped one batch into its second epoch, as saved.

    `latest_net_<name>.pth` for each {name: module}, `latest_opts.pth` (the Adam states of G, and D, saved with
    lr 0 so that the resumed run keeps the weights) and `latest.info` (its position).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in networks.items():
        torch.save(net.state_dict(), folder / f'latest_net_{name}.pth')
    torch.save([published_adam_state(networks[name].parameters(), 0.0, 0.5) for name in ('G', 'D') if name in networks],
               folder / 'latest_opts.pth')
    torch.save({'resume_epoch': 1, 'resume_iter': 1}, folder / 'latest.info')


def check_resumed_published_run(tmp_path, model, networks, caplog, *extra):
    """--continue_train in the folder of `write_published_checkpoint`: the run goes on from its position,
    weights and optimizer states, and says what it could not restore."""
    folder = tmp_path / 'checkpoints' / 'published'
    face_folder(tmp_path / 'faces', count=2)  # batch 1: 2 iterations per epoch; the run stopped after iteration 3
    flags = train_flags(tmp_path, model, 'published', '--continue_train', '--total_epochs', '2', '--batch_size', '1',
                        *extra)
    with caplog.at_level(logging.INFO):
        assert run_training(flags) == 0
    assert f'starting at epoch 2, iteration 3 (position of {folder / "latest.info"})' in caplog.text
    assert 'resumed a run of the published code' in caplog.text and 'not restored' in caplog.text
    scalars, _ = read_events(tmp_path / 'logs' / 'published')
    assert list(scalars['loss/Pix']) == [4] and scalars['lr/lr_G'] == {4: 0.0}
    optimizers = load_train_state(str(folder / 'latest_train_state.pth'))['model']['optimizers']
    assert list(optimizers) == [name for name in ('G', 'D') if name in networks]
    for name in optimizers:  # the saved optimizers' lr 0 kept the weights the loaded ones
        trained = torch.load(folder / f'latest_net_{name}.pth', weights_only=True)
        assert all(torch.equal(trained[key], value) for key, value in networks[name].named_parameters())
        assert {float(values['step']) for values in optimizers[name]['state'].values()} == {SAVED_STEPS + 1}


@pytest.mark.slow
def test_published_checkpoint_folder_loads_with_epoch_20_in_test_py_and_resumes_in_train_py(tmp_path, monkeypatch,
                                                                                            capsys, caplog):
    spec = GeneratorSpec('sparnet', 1, 'spar', 'bn')
    folder = tmp_path / 'checkpoints' / 'published'
    net = random_generator(spec).train()
    write_published_checkpoint(folder, {'G': net})
    torch.save(net.state_dict(), folder / '20_net_G.pth')  # the published name of epoch 20
    results = tmp_path / 'results'
    check_test_script_output(['--model', 'sparnet', '--res_depth', '1', '--name', 'published', '--checkpoints_dir',
                              str(tmp_path / 'checkpoints'), '--epoch', '20', '--results_dir', str(results),
                              '--phase', 'val', '--scale_factor', '4', '--eval', '--num_test', '5', '--verbose'],
                             folder / '20_net_G.pth', spec, tmp_path,
                             out_dir=results / 'published' / 'val_20')
    assert '[Network G]' in capsys.readouterr().out
    check_resumed_published_run(tmp_path, 'sparnet', {'G': net}, caplog)


@pytest.mark.slow
def test_published_sparnethd_run_resumes_with_its_discriminator_keys_and_two_optimizers(tmp_path, caplog):
    networks = {'G': random_generator(HD_SPEC, seed=1).train(), 'H': random_generator(HD_SPEC, seed=2).train(),
                'D': define_D(tiny_hd_options())}
    assert 'D_pool.1.score_out.conv2d.weight_orig' in networks['D'].state_dict()  # the published key names
    write_published_checkpoint(tmp_path / 'checkpoints' / 'published', networks)
    check_resumed_published_run(tmp_path, 'sparnethd', networks, caplog, '--lambda_pcp', '0')


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
