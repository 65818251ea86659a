"""Lower layers never import upper ones: utils/ imports neither models/, options/ nor data/; models/ not options/."""
import json
import os

import pytest

from conftest import ROOT, run_script


def modules_of(package):
    folder = os.path.join(ROOT, package)
    return sorted(f'{package}.{name[:-3]}' for name in os.listdir(folder)
                  if name.endswith('.py') and name != '__init__.py')


def packages_loaded_by(modules):
    """Top-level packages of this repo in sys.modules after importing `modules` in a fresh interpreter."""
    code = ('import importlib, json, sys\n'
            f'for name in {modules!r}: importlib.import_module(name)\n'
            "packages = {m.split('.')[0] for m in sys.modules} & {'data', 'models', 'options', 'utils'}\n"
            'print(json.dumps(sorted(packages)))')
    proc = run_script('-c', code)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize('package, allowed', [('utils', ['utils']), ('models', ['models', 'utils'])])
def test_package_imports_no_upper_layer(package, allowed):
    assert packages_loaded_by(modules_of(package)) == allowed
