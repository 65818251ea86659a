"""The tree's rules, read from the source: lower layers never import upper ones, nothing imports an entry point or
a script, and nothing edits sys.path to find the packages."""
import ast
import os

import pytest

from helpers.commands import ROOT

# Lowest first: a package may import only the packages before it.
LAYERS = ('utils', 'archs', 'weights', 'losses', 'models', 'upsamplers', 'data', 'faces', 'video', 'metrics', 'api',
          'options', 'training', 'inference', 'baselines', 'webapp')
ENTRY_POINTS = ('train', 'test', 'test_enhance_single_unalign', 'app', 'psnr_ssim', 'hubconf')


def python_files(folder):
    for parent, dirs, files in os.walk(os.path.join(ROOT, folder)):
        dirs[:] = [name for name in dirs if not name.startswith('.') and name != '__pycache__']
        yield from (os.path.join(parent, name) for name in files if name.endswith('.py'))


def imported_modules(path):
    """Every module `path` imports, at any depth (function-level imports too), absolute names."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f'{path}: relative import (the project uses absolute ones)'
            yield node.module
            yield from (f'{node.module}.{alias.name}' for alias in node.names)


def project_packages(path):
    return {name.split('.')[0] for name in imported_modules(path)} & {*LAYERS, *ENTRY_POINTS, 'scripts'}


@pytest.mark.parametrize('package', LAYERS)
def test_package_imports_only_lower_layers(package):
    allowed = set(LAYERS[:LAYERS.index(package) + 1])
    for path in python_files(package):
        assert project_packages(path) <= allowed, os.path.relpath(path, ROOT)


def test_no_module_imports_an_entry_point_or_a_script():
    for folder in (*LAYERS, 'scripts'):
        for path in python_files(folder):
            imported = {name for name in imported_modules(path)}
            assert not imported & set(ENTRY_POINTS), os.path.relpath(path, ROOT)
            assert not any(name.startswith('scripts.') for name in imported), os.path.relpath(path, ROOT)


def test_utils_is_generic_plumbing_of_a_dozen_modules_or_fewer():
    modules = [name for name in os.listdir(os.path.join(ROOT, 'utils')) if name.endswith('.py')]
    assert len(modules) - 1 <= 12  # __init__.py aside


def edits_sys_path(path):
    """Whether `path` calls sys.path.insert / append / extend anywhere."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and ast.unparse(node.func) in
               ('sys.path.insert', 'sys.path.append', 'sys.path.extend') for node in ast.walk(tree))


def test_nothing_edits_sys_path():
    files = [os.path.join(ROOT, name) for name in os.listdir(ROOT) if name.endswith('.py')]
    for folder in (*LAYERS, 'scripts', 'tests'):
        files += python_files(folder)
    assert [os.path.relpath(path, ROOT) for path in files if edits_sys_path(path)] == []
