"""What every model shares: building the generator, checkpoint paths, loading weights, inference, training."""
import os

import torch

from utils import distributed
from utils.cli import UserError

from .fast_inference import prepare_inference_net
from .fast_training import channels_last, fused_adam, prepare_training_net
from .lr_policy import create_scheduler
from .networks import GeneratorSpec
from .onnx_inference import OnnxGenerator
from .weights import WeightsError, load_generator_weights, mismatch_message


class BaseModel:
    default_gnorm = 'bn'
    default_load_size = 128
    default_train_dataset = 'celeba'
    inference_net_name = 'G'  # whose weights test.py uses when loading from checkpoints_dir

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return parser

    def __init__(self, opt):
        self.opt = opt
        self.device = opt.device
        self.spec = GeneratorSpec.from_options(opt)
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.netG = self.spec.build()
        self.inference_net = None
        self.channels_last_inputs = False

    def checkpoint_path(self, tag, net_name):
        """`<checkpoints_dir>/<name>/<tag>_net_<net_name>.pth`, tag being `latest`, `iter_N` or `epoch_N`."""
        return os.path.join(self.save_dir, f'{tag}_net_{net_name}.pth')

    def load_tag(self):
        if self.opt.load_iter > 0:
            return f'iter_{self.opt.load_iter}'
        epoch = str(self.opt.epoch)
        return f'epoch_{epoch}' if epoch.isdigit() else epoch

    def inference_weights_path(self):
        return self.opt.pretrain_model_path or self.checkpoint_path(self.load_tag(), self.inference_net_name)

    def setup_inference(self):
        """Load the weights strictly and prepare the network that `test()` runs.

        Default: the fast path (norms folded into the convs, same function; the plain module is
        dropped once folded); `--reference_impl` runs the plain module, `--onnx_model` an exported
        model with ONNX Runtime.
        """
        opt = self.opt
        if opt.onnx_model:
            self.inference_net = OnnxGenerator(opt.onnx_model, self.device)
            onnx_size = list(self.inference_net.input_shape[2:])
            if onnx_size != [opt.load_size, opt.load_size]:
                raise UserError(f"{opt.onnx_model}: exported for {onnx_size[0]}x{onnx_size[1]} inputs, but "
                                f"--load_size is {opt.load_size}; export again with --in_size {opt.load_size}")
            return self
        load_generator_weights(self.netG, self.inference_weights_path(), self.spec)
        self.netG.to(self.device).eval()
        if opt.reference_impl:
            self.inference_net = self.netG
            return self
        try:
            self.inference_net = prepare_inference_net(self.netG, self.device, opt.precision)
        except ValueError as err:
            raise UserError(f'--precision {opt.precision}: {err}') from err
        self.netG = None  # the folded copy is all that runs: free the plain module (340 MB for SPARNetHD)
        return self

    def set_input(self, batch):
        """LR batch for `test()`; training batches also carry the HR targets."""
        self.LR = batch['LR'].to(self.device)
        self.HR = batch['HR'].to(self.device) if 'HR' in batch else None
        if self.channels_last_inputs:
            self.LR = channels_last(self.LR)
            self.HR = channels_last(self.HR) if self.HR is not None else None
        self.image_paths = batch['LR_paths'] if 'LR_paths' in batch else batch['HR_paths']

    def test(self):
        """Super-resolve `self.LR` into `self.SR`, clamped to [-1, 1] like the published code."""
        with torch.inference_mode():
            self.SR = self.inference_net(self.LR).float().clamp_(-1, 1)
        return self.SR

    def setup_training(self, iters_per_epoch):
        """Generator on the device in train mode (from --pretrain_model_path if given), optimizers, schedulers.

        `train_G` is the generator as run in training: wrapped in DDP or DataParallel on several
        devices; `netG` stays the plain module whose state dict is saved in the released format.
        """
        if self.opt.pretrain_model_path:
            load_generator_weights(self.netG, self.opt.pretrain_model_path, self.spec)
        self.netG.to(self.device).train()
        if self.opt.fast_train:
            if distributed.launched_by_torchrun() or len(self.opt.gpu_ids) > 1:
                raise UserError('--fast_train runs on one device only (it is not verified with DDP or '
                                'DataParallel yet); drop it for multi-device training')
            prepare_training_net(self.netG)
            self.channels_last_inputs = True
        self.train_G = distributed.wrap(self.netG, self.opt)
        self.optimizers = self.create_optimizers()
        self.schedulers = {name: create_scheduler(optimizer, self.opt, iters_per_epoch)
                           for name, optimizer in self.optimizers.items()}
        self.losses = {}
        return self

    def adam(self, params, lr):
        """Adam with betas (--beta1, 0.99); its fused kernel with --fast_train."""
        betas = (self.opt.beta1, 0.99)
        return fused_adam(params, lr, betas) if self.opt.fast_train else torch.optim.Adam(params, lr, betas=betas)

    def create_optimizers(self):
        """{name: optimizer}; the name also keys its scheduler and its `lr_<name>` log."""
        raise NotImplementedError

    def optimize_parameters(self):
        """One training step on the batch of `set_input`; fills `self.losses` and `self.SR`."""
        raise NotImplementedError

    def saved_networks(self):
        """{name: module} saved as `<tag>_net_<name>.pth`, plain state dicts."""
        return {'G': self.netG}

    def validation_networks(self):
        return {'G': self.netG}

    def get_current_losses(self):
        return {name: float(value) for name, value in self.losses.items()}

    def get_current_visuals(self):
        """Columns of the TensorBoard image grid, NCHW in [-1, 1]."""
        return {'LR': self.LR, 'SR': self.SR.detach(), 'HR': self.HR}

    def learning_rates(self):
        return {f'lr_{name}': scheduler.get_last_lr()[0] for name, scheduler in self.schedulers.items()}

    def update_learning_rate(self):
        for scheduler in self.schedulers.values():
            scheduler.step()

    def training_state(self):
        """Everything of the model a resume needs: networks, optimizers, schedulers."""
        return {'networks': {name: net.state_dict() for name, net in self.saved_networks().items()},
                'optimizers': {name: opt.state_dict() for name, opt in self.optimizers.items()},
                'schedulers': {name: sched.state_dict() for name, sched in self.schedulers.items()}}

    def load_training_state(self, state, path):
        """Restore `training_state()` strictly; WeightsError naming the file when a network does not fit."""
        for name, net in self.saved_networks().items():
            saved = state['networks'][name]
            expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
            if {k: tuple(v.shape) for k, v in saved.items()} != expected:
                if name in ('G', 'H'):
                    raise WeightsError(mismatch_message(f'{path} (net {name})', self.spec, saved, expected))
                raise WeightsError(f"{path}: the saved net {name} does not fit the one of the current flags "
                                   "(--num_D --n_layers_D --Dnorm); resume with the flags of the interrupted run")
            net.load_state_dict(saved)
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state['optimizers'][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state['schedulers'][name])
