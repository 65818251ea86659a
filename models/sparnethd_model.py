"""SPARNetHD: blind restoration of 512x512 FFHQ-aligned faces; GAN-trained, EMA weights released."""
from .base_model import BaseModel


class SPARNetHDModel(BaseModel):
    default_gnorm = 'in'
    default_load_size = 512
    inference_net_name = 'H'  # the EMA generator, as released


MODEL_CLASS = SPARNetHDModel
