"""SPARNet: 16x16 faces, bicubically enlarged to 128x128, super-resolved; trained with L1."""
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
        self.SR = self.train_G(self.LR)
        loss_pix = F.l1_loss(self.SR, self.HR) * self.opt.lambda_pix
        self.optimizers['G'].zero_grad()
        loss_pix.backward()
        self.optimizers['G'].step()
        self.losses = {'Pix': loss_pix.detach()}


MODEL_CLASS = SPARNetModel
