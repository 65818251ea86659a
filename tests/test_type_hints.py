"""What one package calls of another carries type hints: every function, and every public method (and __init__) of
every class, that a module of another package (or a script, or an entry point) imports by name."""
import ast
import os
from collections import defaultdict

from helpers.commands import ROOT

LIBRARY = ('utils', 'archs', 'weights', 'losses', 'models', 'upsamplers', 'data', 'faces', 'video', 'metrics', 'api',
           'options', 'training', 'inference', 'baselines', 'webapp')


def python_files(folder):
    for parent, dirs, files in os.walk(os.path.join(ROOT, folder)):
        dirs[:] = [name for name in dirs if name != '__pycache__']
        yield from (os.path.join(parent, name) for name in files if name.endswith('.py'))


def imported_across_packages():
    """{(module, name)} of the library imported by name from another package, a script or an entry point."""
    importers = [*(path for folder in (*LIBRARY, 'scripts') for path in python_files(folder)),
                 *(os.path.join(ROOT, name) for name in os.listdir(ROOT) if name.endswith('.py'))]
    imported = set()
    for path in importers:
        package = os.path.relpath(path, ROOT).split(os.sep)[0]
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module.split('.')[0] in set(LIBRARY) - {package}:
                imported.update((node.module, alias.name) for alias in node.names)
    return imported


def unannotated(function):
    """Whether a def lacks a hint on an argument (self and cls aside) or on its return (__init__ aside)."""
    args = function.args
    named = [arg for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs) if arg.arg not in ('self', 'cls')]
    starred = [arg for arg in (args.vararg, args.kwarg) if arg is not None]
    return (any(arg.annotation is None for arg in named + starred)
            or (function.returns is None and function.name != '__init__'))


def definitions(module):
    """{name: ast node} of the top-level defs and classes of `module`, or None if it is a package, not a file."""
    path = os.path.join(ROOT, *module.split('.')) + '.py'
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    return {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def test_what_other_packages_call_has_type_hints():
    missing = []
    by_module = defaultdict(set)
    for module, name in imported_across_packages():
        by_module[module].add(name)
    for module, names in by_module.items():
        defs = definitions(module)
        for name in sorted(names & set(defs or ())):
            node = defs[name]
            if isinstance(node, ast.FunctionDef):
                missing += [f'{module}.{name}'] if unannotated(node) else []
                continue
            missing += [f'{module}.{name}.{method.name}' for method in node.body
                        if isinstance(method, ast.FunctionDef) and unannotated(method)
                        and (not method.name.startswith('_') or method.name == '__init__')]
    assert not missing, 'without type hints: ' + ', '.join(f"'{name}'" for name in sorted(missing))
