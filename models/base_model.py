"""What every model shares: building the generator, checkpoint paths, loading weights, training (inference runs
in `models.enhancer`, built by the Python API)."""
import argparse
import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any, Self

import torch

from archs.generator_spec import GeneratorSpec
from archs.initial_weights import init_weights
from models.fast_training import channels_last, fused_adam, prepare_training_net
from models.lr_policy import create_scheduler
from models.precision import MixedPrecision
from utils import distributed
from utils.cli import UserError
from weights.checkpoint import describe
from weights.generator import check_generator_state, load_generator_weights, read_state_dict
from weights.state_dict import WeightsError, load_tensors, shape_differences, tensor_shapes


class BaseModel:
    default_gnorm = 'bn'
    default_load_size = 128
    # The smallest --load_size the network runs on: the least multiple of its downscaling factor (8 for
    # SPARNet, 16 for SPARNetHD) whose smallest feature map the attention's reflection padding accepts (measured).
    min_load_size = 40
    default_train_dataset = 'celeba'
    inference_net_name = 'G'  # whose weights test.py uses when loading from checkpoints_dir (options.pipelines)
    ignored_train_flags = ()  # training flags of the other model, accepted without effect
    lr_flags = {'G': 'lr'}  # {optimizer name: the flag of its learning rate}
    SR: torch.Tensor  # the generator's output of the last training step (`optimize_parameters`)

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.device = opt.device
        self.spec = GeneratorSpec.from_options(opt)
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.netG = self.spec.build()
        self.channels_last_inputs = False

    def set_input(self, batch: dict[str, Any]) -> None:
        """A training batch: LR inputs and HR targets, on the device."""
        self.LR = batch['LR'].to(self.device)
        self.HR = batch['HR'].to(self.device)
        if self.channels_last_inputs:
            self.LR, self.HR = channels_last(self.LR), channels_last(self.HR)
        self.image_paths = batch['LR_paths'] if 'LR_paths' in batch else batch['HR_paths']

    def setup_training(self, iters_per_epoch: int) -> Self:
        """Generator on the device in train mode, optimizers, schedulers, the --precision of the steps.

        The generator starts from `--init_type --init_gain` weights, or from --pretrain_model_path.

        `train_G` is the generator as run in training: wrapped in DDP or DataParallel on several
        devices; `netG` stays the plain module whose state dict is saved in the released format.
        """
        init_weights(self.netG, self.opt.init_type, self.opt.init_gain)
        if self.opt.pretrain_model_path:
            load_generator_weights(self.netG, self.opt.pretrain_model_path, self.spec)
        self.netG.to(self.device).train()
        self.precision = MixedPrecision(self.opt.precision, self.device)
        self.precision.prepare(self.netG)
        if self.opt.fast_train:
            if distributed.launched_by_torchrun() or len(self.opt.gpu_ids) > 1:
                raise UserError('--fast_train runs on one device only (it is not verified with DDP or '
                                'DataParallel yet); drop it for multi-device training')
            prepare_training_net(self.netG)
            self.channels_last_inputs = True
        self.train_G = distributed.wrap(self.netG, self.opt)
        self.optimizers = self.create_optimizers()
        self.iters_per_epoch = iters_per_epoch
        self.start_schedulers_at(0)
        self.losses: dict[str, torch.Tensor] = {}
        self.skipped_step = False
        return self

    def start_schedulers_at(self, iteration: int) -> None:
        """Schedulers at the learning rates of `iteration` (for runs started part-way, or without saved schedulers)."""
        self.schedulers = {name: create_scheduler(optimizer, self.opt, self.iters_per_epoch, iteration)
                           for name, optimizer in self.optimizers.items()}

    def adam(self, params: Iterable[torch.nn.Parameter], name: str) -> torch.optim.Optimizer:
        """Adam of optimizer `name` at its --lr flag, betas (--beta1, 0.99); its fused kernel with --fast_train."""
        lr, betas = getattr(self.opt, self.lr_flags[name]), (self.opt.beta1, 0.99)
        return fused_adam(params, lr, betas) if self.opt.fast_train else torch.optim.Adam(params, lr, betas=betas)

    def create_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """{name: optimizer}; the name also keys its scheduler and its `lr_<name>` log."""
        raise NotImplementedError

    def optimize_parameters(self) -> None:
        """One optimizer step on the batch of `set_input` (--accum_steps micro-batches); fills `self.losses` (means
        over the batch), `self.SR` and `self.skipped_step` (whether fp16's loss scaler skipped a step)."""
        raise NotImplementedError

    def micro_batches(self) -> list[tuple[torch.Tensor, torch.Tensor, contextlib.AbstractContextManager]]:
        """(LR, HR, exchange) of each of the --accum_steps micro-batches of the batch of `set_input`. `exchange` is
        the context of that micro-batch's forward and backward passes: under DDP, only the last micro-batch's
        backward passes exchange gradients (the others run in `no_sync`, accumulating locally), so a step costs
        the exchanges of one micro-batch, not of each."""
        pairs = list(zip(self.LR.chunk(self.opt.accum_steps), self.HR.chunk(self.opt.accum_steps)))
        return [(lr, hr, contextlib.nullcontext() if index == len(pairs) - 1 else self._no_sync())
                for index, (lr, hr) in enumerate(pairs)]

    @contextlib.contextmanager
    def _no_sync(self) -> Iterator[None]:
        """DDP's `no_sync` of each trained network that has one (DataParallel and plain modules have none)."""
        with contextlib.ExitStack() as stack:
            for net in self.trained_networks():
                no_sync = getattr(net, 'no_sync', None)
                if callable(no_sync):
                    stack.enter_context(no_sync())
            yield

    def trained_networks(self) -> list[torch.nn.Module]:
        """The networks as run in training (wrapped for several devices), whose gradients processes exchange."""
        return [self.train_G]

    def saved_networks(self) -> dict[str, torch.nn.Module]:
        """{name: module} saved as `<tag>_net_<name>.pth`, plain state dicts."""
        return {'G': self.netG}

    def validation_networks(self) -> dict[str, torch.nn.Module]:
        return {'G': self.netG}

    @staticmethod
    def print_networks(networks: dict[str, torch.nn.Module]) -> None:
        """--verbose: each network of {name: module} and its parameter count, as the published code printed them."""
        for name, net in networks.items():
            print(f'{net}\n[Network {name}] {sum(p.numel() for p in net.parameters()):,} parameters')

    def get_current_losses(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.losses.items()}

    def get_current_visuals(self) -> dict[str, torch.Tensor]:
        """Columns of the TensorBoard image grid, NCHW in [-1, 1]."""
        return {'LR': self.LR, 'SR': self.SR.detach(), 'HR': self.HR}

    def learning_rates(self) -> dict[str, float]:
        return {f'lr_{name}': scheduler.get_last_lr()[0] for name, scheduler in self.schedulers.items()}

    def update_learning_rate(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    def training_state(self) -> dict[str, Any]:
        """Everything of the model a resume needs: networks, optimizers, schedulers, fp16's loss scaler."""
        return {'networks': {name: net.state_dict() for name, net in self.saved_networks().items()},
                'optimizers': {name: opt.state_dict() for name, opt in self.optimizers.items()},
                'schedulers': {name: sched.state_dict() for name, sched in self.schedulers.items()},
                'scaler': self.precision.state_dict()}

    def load_network_state(self, name: str, state_dict: dict[str, torch.Tensor], source: str) -> None:
        """Load `state_dict` into the saved network `name` strictly; WeightsError naming `source` if it does not fit."""
        net = self.saved_networks()[name]
        if name in ('G', 'H'):
            check_generator_state(state_dict, self.spec, source, tensor_shapes(net.state_dict()))
        elif shape_differences(state_dict, tensor_shapes(net.state_dict())):
            raise WeightsError(f"{source}: the saved net {name} does not fit the one of the current flags "
                               "(--num_D --n_layers_D --Dnorm); resume with the flags of the interrupted run")
        net.load_state_dict(state_dict)

    def load_published_checkpoint(self, folder: str, tag: str, with_optimizers: bool = True) -> None:
        """Networks and optimizers saved by the published code as `<tag>_net_<name>.pth` and `<tag>_opts.pth`.

        The optimizer file is a list of optimizer states in the order of `self.optimizers` ([G] or [G, D]).
        """
        paths = {name: os.path.join(folder, f'{tag}_net_{name}.pth') for name in self.saved_networks()}
        if with_optimizers:
            paths['opts'] = os.path.join(folder, f'{tag}_opts.pth')
        missing = [os.path.basename(path) for path in paths.values() if not os.path.isfile(path)]
        if missing:
            raise UserError(f"{folder}: the published code's checkpoint `{tag}` lacks {', '.join(missing)}; "
                            "a resume needs every network and the optimizer states (or --reset_optimizer)")
        for name in self.saved_networks():
            self.load_network_state(name, read_state_dict(paths[name]), paths[name])
        if not with_optimizers:
            return
        states = load_tensors(paths['opts'], what='optimizer states file')
        if not isinstance(states, list) or len(states) != len(self.optimizers):
            raise UserError(f"{paths['opts']}: expected a list of {len(self.optimizers)} optimizer states "
                            f"({', '.join(self.optimizers)}), found {describe(states)}")
        for (name, optimizer), state in zip(self.optimizers.items(), states):
            try:
                optimizer.load_state_dict(state)
            except (ValueError, KeyError, TypeError) as err:
                raise UserError(f"{paths['opts']}: optimizer state {name} does not fit net {name} "
                                f"({str(err).splitlines()[0]})") from None

    def load_training_state(self, state: dict[str, Any], path: str, with_optimizers: bool = True) -> None:
        """Restore `training_state()` strictly (the networks only without `with_optimizers`); WeightsError
        naming the file when a network does not fit."""
        for name in self.saved_networks():
            self.load_network_state(name, state['networks'][name], f'{path} (net {name})')
        if not with_optimizers:
            return
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state['optimizers'][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state['schedulers'][name])
        self.precision.load_state_dict(state.get('scaler', {}))  # none before --precision
