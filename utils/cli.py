"""Entry-point wrapper: user errors become one line on stderr and a non-zero exit, not a traceback."""
import logging
import sys


def unquoted(value):
    """Strip one pair of surrounding quotes: Windows shells pass `--Gnorm 'in'` with the quotes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '\'"':
        value = value[1:-1].strip()
    return value


def unquoted_lower(value):
    return unquoted(value).lower()


class UserError(Exception):
    """Bad input (missing file, wrong weights, bad flag value): shown as one line, exit code 2."""


def run(main):
    """Call `main()` and exit with its return code (0 when it returns None)."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    try:
        code = main()
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        code = 130
    sys.exit(code or 0)


def print_path_lists(titled_paths):
    """End-of-run listing: for each (title, paths) with paths, the title and one indented path a line."""
    for title, paths in titled_paths:
        if paths:
            print(f'{title}:\n' + '\n'.join(f'  {path}' for path in paths))
