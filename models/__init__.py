"""Model classes by `--model` name, CycleGAN style: `models/<name>_model.py` holds `<Name>Model`."""
import importlib

MODEL_NAMES = ('sparnet', 'sparnethd')


def get_model_class(name):
    if name not in MODEL_NAMES:
        raise ValueError(f"--model must be one of {MODEL_NAMES}, got {name!r}")
    module = importlib.import_module(f'models.{name}_model')
    return module.MODEL_CLASS


def create_model(opt):
    return get_model_class(opt.model)(opt)
