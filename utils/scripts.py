"""One of the repository's top-level scripts (test.py, ...) loaded as a fresh module, by path.

`test` is also a package of Python's own, and test.py / test_enhance_single_unalign.py share their
names with test modules, so they are not imported by name.
"""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(file_name):
    """The script at `file_name` (relative to the repository root, e.g. 'test.py') as a new module."""
    spec = importlib.util.spec_from_file_location(f'script_{file_name[:-3].replace(os.sep, ".")}',
                                                  os.path.join(ROOT, file_name))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script
