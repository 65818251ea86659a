"""SPARNet: 16x16 faces, bicubically enlarged to 128x128, super-resolved; trained with L1."""
from .base_model import BaseModel


class SPARNetModel(BaseModel):
    default_gnorm = 'bn'
    default_load_size = 128


MODEL_CLASS = SPARNetModel
