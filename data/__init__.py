"""Datasets by `--dataset_name`, CycleGAN style: `data/<name>_dataset.py` holds `DATASET_CLASS`."""
import importlib

import torch.utils.data

DATASET_NAMES = ('single', 'celeba', 'ffhq')


def get_dataset_class(name):
    if name not in DATASET_NAMES:
        raise ValueError(f"--dataset_name must be one of {DATASET_NAMES}, got {name!r}")
    return importlib.import_module(f'data.{name}_dataset').DATASET_CLASS


def create_dataset(opt):
    return get_dataset_class(opt.dataset_name)(opt)


def create_test_dataloader(dataset, opt):
    """In-order batches; unreadable images come out in `errors` instead of stopping the run."""
    return torch.utils.data.DataLoader(dataset, batch_size=opt.batch_size, shuffle=False,
                                       num_workers=opt.num_threads, collate_fn=dataset.collate)
