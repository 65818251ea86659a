"""SPARNetHD: blind restoration of 512x512 FFHQ-aligned faces; GAN-trained, EMA weights released."""
import torch
from torch.nn import functional as F

from archs.discriminator import define_D, upgrade_discriminator_keys
from losses.gan import GANLoss, feature_matching_loss
from losses.perceptual import VGG19_FILE, VGG19_LEGACY_PATH, VGG19_WEIGHTS, VGGPerceptualLoss
from models.base_model import BaseModel
from models.ema import ema_copy, ema_step
from models.fast_training import prepare_training_net
from utils import distributed
from utils.cli import input_path


class SPARNetHDModel(BaseModel):
    default_gnorm = 'in'
    default_load_size = 512
    min_load_size = 48
    default_train_dataset = 'ffhq'
    inference_net_name = 'H'  # the EMA generator, as released
    ignored_train_flags = ('lr',)
    lr_flags = {'G': 'g_lr', 'D': 'd_lr'}

    @staticmethod
    def modify_commandline_options(parser, is_train):
        if is_train:
            parser.add_argument('--lambda_pix', type=float, default=100.0, help='weight of the L1 pixel loss')
            parser.add_argument('--lambda_pcp', type=float, default=1.0,
                                help='weight of the VGG19 perceptual loss (0: no VGG19 needed)')
            parser.add_argument('--lambda_fm', type=float, default=10.0, help='weight of the feature-matching loss')
            parser.add_argument('--lambda_g', type=float, default=1.0, help='weight of the generator GAN loss')
            parser.add_argument('--ema_decay', type=float, default=0.999,
                                help='netH = decay * netH + (1 - decay) * netG at every iteration')
            parser.add_argument('--vgg_weights', type=input_path, default=None,
                                help="torchvision's ImageNet VGG19 weights, for the perceptual loss (default: "
                                     f"{VGG19_LEGACY_PATH} if there, else {VGG19_FILE} in --weights_dir, "
                                     "downloaded on first use)")
        return parser

    def setup_training(self, iters_per_epoch):
        """Also the discriminator, the losses and the EMA generator `netH` (a copy of G at the start)."""
        opt = self.opt
        self.netD = define_D(opt).to(self.device).train()
        if opt.lambda_pcp:
            vgg_weights = opt.vgg_weights or VGG19_WEIGHTS.fetch(opt.weights_dir)
            self.criterion_pcp = VGGPerceptualLoss(vgg_weights).to(self.device)
        else:
            self.criterion_pcp = None
        self.criterion_gan = GANLoss(opt.gan_mode)
        super().setup_training(iters_per_epoch)
        self.precision.prepare(self.netD)
        if opt.fast_train:  # D and VGG19 in channels-last too, D's pads in the activations' dtype
            prepare_training_net(self.netD)
            if self.criterion_pcp is not None:
                self.criterion_pcp.to(memory_format=torch.channels_last)
        self.train_D = distributed.wrap(self.netD, opt)
        self.netH = ema_copy(self.netG)
        return self

    def create_optimizers(self):
        return {'G': self.adam(self.netG.parameters(), 'G'), 'D': self.adam(self.netD.parameters(), 'D')}

    def saved_networks(self):
        return {'G': self.netG, 'H': self.netH, 'D': self.netD}

    def load_network_state(self, name, state_dict, source):
        """Also net_D files of ours saved before the published key names (`score_out.*`)."""
        if name == 'D':
            state_dict = upgrade_discriminator_keys(state_dict)
        super().load_network_state(name, state_dict, source)

    def validation_networks(self):
        return {'G': self.netG, 'H': self.netH}

    def trained_networks(self):
        return [self.train_G, self.train_D]

    def _gan_loss(self, results, target_is_real, for_discriminator):
        """GAN loss averaged over the discriminator's scales."""
        return sum(self.criterion_gan(score, target_is_real, for_discriminator)
                   for score, _ in results) / len(results)

    def _generator_losses(self, sr, hr):
        """Pixel, perceptual, feature-matching and GAN losses of `sr`, through the plain D (frozen by the caller)."""
        opt, run = self.opt, self.precision.forward
        fake_results = run(self.netD, sr)
        with torch.no_grad():
            real_results = run(self.netD, hr)
        losses = {'Pix': F.l1_loss(sr, hr) * opt.lambda_pix}
        if self.criterion_pcp is not None:
            losses['PCP'] = run(self.criterion_pcp, sr, hr) * opt.lambda_pcp
        losses['FM'] = feature_matching_loss(fake_results, real_results) * opt.lambda_fm
        losses['G'] = self._gan_loss(fake_results, True, for_discriminator=False) * opt.lambda_g
        return losses

    def _discriminator_loss(self, sr, hr):
        """D's loss on real and detached fake, one backward each (divided by --accum_steps)."""
        steps, run = self.opt.accum_steps, self.precision.forward
        loss_real = 0.5 * self._gan_loss(run(self.train_D, hr), True, for_discriminator=True)
        self.precision.backward(loss_real / steps)
        loss_fake = 0.5 * self._gan_loss(run(self.train_D, sr.detach()), False, for_discriminator=True)
        self.precision.backward(loss_fake / steps)
        return loss_real + loss_fake

    def optimize_parameters(self):
        """For each micro-batch: G's losses (D frozen), then D's on real and detached fake, each divided by
        --accum_steps and backpropagated, accumulating G's and D's gradients. Then the EMA step (as published:
        after G's forward, before its step), G's step and D's step, once each.

        D's step does not depend on G's (D sees the fakes G made before its step), so this is the published
        G step then D step, on the gradients of the whole batch. Under DDP, D's two backward passes of the last
        micro-batch each exchange D's gradients accumulated so far: averaging the part already averaged leaves it
        as it is, so D's step gets the mean over the processes.
        """
        steps, outputs, totals = self.opt.accum_steps, [], {}
        self.optimizers['G'].zero_grad()
        self.optimizers['D'].zero_grad()
        for lr, hr, exchange in self.micro_batches():
            with exchange:
                sr = self.precision.forward(self.train_G, lr)
                self.netD.requires_grad_(False)
                losses = self._generator_losses(sr, hr)
                self.precision.backward(sum(losses.values()) / steps)
                self.netD.requires_grad_(True)
                losses['D'] = self._discriminator_loss(sr, hr)
            for name, value in losses.items():
                totals[name] = totals.get(name, 0) + value.detach() / steps
            outputs.append(sr.detach())
        ema_step(self.netH, self.netG, self.opt.ema_decay, self.LR)
        self.precision.step(self.optimizers['G'])
        self.precision.step(self.optimizers['D'])
        self.skipped_step = self.precision.update()
        self.SR = torch.cat(outputs)
        self.losses = totals

    def get_current_visuals(self):
        """Also H's output, computed in eval mode: a visual must not power-iterate H's vectors again."""
        with torch.no_grad():
            ema_sr = self.netH.eval()(self.LR)
        self.netH.train()
        return {'LR': self.LR, 'SR': self.SR.detach(), 'SR_EMA': ema_sr, 'HR': self.HR}


MODEL_CLASS = SPARNetHDModel
