"""SPARNet: 16x16 faces, bicubically enlarged to 128x128, super-resolved; trained with L1."""
import torch
from torch.nn import functional as F

from models.base_model import BaseModel


class SPARNetModel(BaseModel):
    default_gnorm = 'bn'
    default_load_size = 128
    default_train_dataset = 'celeba'
    ignored_train_flags = ('g_lr', 'd_lr', 'gan_mode')

    @staticmethod
    def modify_commandline_options(parser, is_train):
        if is_train:
            parser.add_argument('--lambda_pix', type=float, default=1.0, help='weight of the L1 pixel loss')
        return parser

    def create_optimizers(self):
        return {'G': self.adam(self.netG.parameters(), 'G')}

    def optimize_parameters(self):
        """L1 of each micro-batch divided by --accum_steps, so that the summed gradients are those of the mean L1
        over the whole batch; then one step."""
        optimizer, outputs, loss_pix = self.optimizers['G'], [], 0
        optimizer.zero_grad()
        for lr, hr, exchange in self.micro_batches():
            with exchange:
                sr = self.precision.forward(self.train_G, lr)
                loss = F.l1_loss(sr, hr) * self.opt.lambda_pix / self.opt.accum_steps
                self.precision.backward(loss)
            outputs.append(sr.detach())
            loss_pix = loss_pix + loss.detach()
        self.precision.step(optimizer)
        self.skipped_step = self.precision.update()
        self.SR = torch.cat(outputs)
        self.losses = {'Pix': loss_pix}


MODEL_CLASS = SPARNetModel
