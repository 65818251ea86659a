"""SPARNetHD: blind restoration of 512x512 FFHQ-aligned faces; GAN-trained, EMA weights released."""
import torch
from torch.nn import functional as F

from archs.discriminator import define_D, upgrade_discriminator_keys
from losses.gan import GANLoss, feature_matching_loss
from losses.perceptual import VGG19_FILE, VGG19_LEGACY_PATH, VGG19_WEIGHTS, VGGPerceptualLoss
from models.base_model import BaseModel
from models.ema import ema_copy, ema_step
from utils import distributed
from utils.cli import unquoted


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
            parser.add_argument('--vgg_weights', type=unquoted, default=None,
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

    def _gan_loss(self, results, target_is_real, for_discriminator):
        """GAN loss averaged over the discriminator's scales."""
        return sum(self.criterion_gan(score, target_is_real, for_discriminator)
                   for score, _ in results) / len(results)

    def _generator_losses(self):
        """Pixel, perceptual, feature-matching and GAN losses of `self.SR`, through the plain D (frozen by the
        caller)."""
        opt = self.opt
        fake_results = self.netD(self.SR)
        with torch.no_grad():
            real_results = self.netD(self.HR)
        losses = {'Pix': F.l1_loss(self.SR, self.HR) * opt.lambda_pix}
        if self.criterion_pcp is not None:
            losses['PCP'] = self.criterion_pcp(self.SR, self.HR) * opt.lambda_pcp
        losses['FM'] = feature_matching_loss(fake_results, real_results) * opt.lambda_fm
        losses['G'] = self._gan_loss(fake_results, True, for_discriminator=False) * opt.lambda_g
        return losses

    def optimize_parameters(self):
        """EMA step (as published: after G's forward, before its step), G step (D frozen), then D step on real
        and detached fake (one backward each)."""
        self.SR = self.train_G(self.LR)
        ema_step(self.netH, self.netG, self.opt.ema_decay, self.LR)
        self.netD.requires_grad_(False)
        losses = self._generator_losses()
        self.optimizers['G'].zero_grad()
        sum(losses.values()).backward()
        self.optimizers['G'].step()

        self.netD.requires_grad_(True)
        self.optimizers['D'].zero_grad()
        loss_real = 0.5 * self._gan_loss(self.train_D(self.HR), True, for_discriminator=True)
        loss_real.backward()
        loss_fake = 0.5 * self._gan_loss(self.train_D(self.SR.detach()), False, for_discriminator=True)
        loss_fake.backward()
        self.optimizers['D'].step()
        losses['D'] = loss_real + loss_fake
        self.losses = {name: value.detach() for name, value in losses.items()}

    def get_current_visuals(self):
        """Also H's output, computed in eval mode: a visual must not power-iterate H's vectors again."""
        with torch.no_grad():
            ema_sr = self.netH.eval()(self.LR)
        self.netH.train()
        return {'LR': self.LR, 'SR': self.SR.detach(), 'SR_EMA': ema_sr, 'HR': self.HR}


MODEL_CLASS = SPARNetHDModel
