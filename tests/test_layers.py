"""The tree's rules, read from the source: lower layers never import upper ones, nothing imports an entry point or
a script, nothing edits sys.path to find the packages, and nothing imports a project module by name at call time."""
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


def top_level_packages():
    """The folders of the root holding an __init__.py, as hubconf.py finds the packages to load."""
    return {name for name in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, name, '__init__.py'))}


# Packages whose functions may import project modules: nothing of theirs runs after a torch.hub load.
LATE_IMPORTS_ALLOWED = {
    'scripts': 'run as `python -m scripts.NAME`, never imported by a package or hubconf.py '
               '(test_no_module_imports_an_entry_point_or_a_script); some defer heavy imports past -h',
}
# Calls importing a module whose name the source does not spell out: (file, call) -> what it imports.
IMPORTS_BY_VARIABLE_ALLOWED = {
    ('weights/spandrel_file.py', 'importlib.import_module(name)'): 'spandrel and spandrel_extra_arches (third-party)',
}


def late_imports(path, packages):
    """The imports of project modules that `path` makes when called rather than when imported: import statements
    in functions, and importlib.import_module / __import__ of a project module or of a name the source does not
    spell out. Once hubconf.py has loaded the project, sys.modules holds the caller's modules of those names."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    relative = os.path.relpath(path, ROOT).replace(os.sep, '/')
    in_functions = {node for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))}
    for node in sorted(in_functions, key=lambda node: node.lineno):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or '']
        if any(name.split('.')[0] in packages for name in names):
            yield f'{relative}:{node.lineno}: {ast.unparse(node)}'
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func).split('.')[-1] in ('import_module', '__import__')
                and node.args):
            continue
        name = node.args[0]
        if isinstance(name, ast.JoinedStr) and name.values and isinstance(name.values[0], ast.Constant):
            name = name.values[0]  # f'models.{name}_model': its literal start
        if isinstance(name, ast.Constant):
            if str(name.value).split('.')[0] in packages:
                yield f'{relative}:{node.lineno}: {ast.unparse(node)}'
        elif (relative, ast.unparse(node)) not in IMPORTS_BY_VARIABLE_ALLOWED:
            yield f'{relative}:{node.lineno}: {ast.unparse(node)} (a name the source does not spell out)'


def test_nothing_imports_a_project_module_by_name_at_call_time():
    """What torch.hub loads (hubconf.py and every package) binds the modules it uses when imported: issue 36."""
    packages = top_level_packages()
    files = [os.path.join(ROOT, 'hubconf.py')]
    for folder in sorted(packages - set(LATE_IMPORTS_ALLOWED)):
        files += python_files(folder)
    assert [line for path in files for line in late_imports(path, packages)] == []
