"""Model classes by `--model` name, CycleGAN style: `models/<name>_model.py` holds `MODEL_CLASS`.

The model modules are imported with this package, not by name when a model is asked for: after a torch.hub load
(hubconf.py), the name `models` may be the caller's own package."""
import argparse

from models import sparnet_model, sparnethd_model
from models.base_model import BaseModel

_MODEL_CLASSES = {module.__name__.removeprefix('models.').removesuffix('_model'): module.MODEL_CLASS
                  for module in (sparnet_model, sparnethd_model)}
MODEL_NAMES = tuple(_MODEL_CLASSES)


def get_model_class(name: str) -> type[BaseModel]:
    if name not in MODEL_NAMES:
        raise ValueError(f"--model must be one of {MODEL_NAMES}, got {name!r}")
    return _MODEL_CLASSES[name]


def create_model(opt: argparse.Namespace) -> BaseModel:
    return get_model_class(opt.model)(opt)
