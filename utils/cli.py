"""Entry-point wrapper: user errors become one line on stderr and a non-zero exit, not a traceback.

Also the command-line parser and the numeric flag types shared by every script, so that a bad
value is refused the same way everywhere: one line naming the flag and the accepted range, exit 2.
"""
import argparse
import logging
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn


def unquoted(value: str) -> str:
    """Strip one pair of surrounding quotes: Windows shells pass `--Gnorm 'in'` with the quotes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '\'"':
        value = value[1:-1].strip()
    return value


def unquoted_lower(value: str) -> str:
    return unquoted(value).lower()


PATH_ROLES = ('input', 'output file', 'output folder', 'cache')


def path_flag(role: str) -> Callable[[str], str]:
    """argparse `type=` of a path flag: `unquoted`, tagged with what the command does with the path (one of
    PATH_ROLES: read, write as a file, fill as a folder, keep downloads in), so that the tests find every output
    flag of every command in its parser."""
    if role not in PATH_ROLES:
        raise ValueError(f'role must be one of {PATH_ROLES}, got {role!r}')

    def parse(text: str) -> str:
        return unquoted(text)
    parse.role = role
    parse.__name__ = role
    return parse


input_path = path_flag('input')
output_file = path_flag('output file')
output_folder = path_flag('output folder')
cache_folder = path_flag('cache')


def number_type(kind: type[int] | type[float] = int, low: float | None = None, high: float | None = None,
                above: float | None = None, below: float | None = None,
                infinite: bool = False) -> Callable[[str], int | float]:
    """argparse `type=`: a finite `kind` (int or float) >= `low`, <= `high`, > `above`, < `below`
    ('inf' too if `infinite`); anything else is refused naming the accepted range."""
    lower = f'{low} or more' if low is not None else f'above {above}' if above is not None else ''
    upper = f'at most {high}' if high is not None else f'below {below}' if below is not None else ''
    bounds = f'from {low} to {high}' if low is not None and high is not None else \
        ' and '.join(filter(None, (lower, upper)))
    accepted = (' '.join(filter(None, ('an integer' if kind is int else 'a number', bounds)))
                + (' (or inf)' if infinite else ''))

    def parse(text: str) -> int | float:
        text = unquoted(str(text))
        if infinite and text.lower() in ('inf', 'infinity'):
            return float('inf')
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or (low is not None and value < low) or \
                (high is not None and value > high) or (above is not None and value <= above) or \
                (below is not None and value >= below):
            raise argparse.ArgumentTypeError(f'must be {accepted}, got {text!r}')
        return value
    parse.__name__ = accepted
    return parse


positive_int = number_type(int, low=1)
non_negative_int = number_type(int, low=0)
positive_float = number_type(float, above=0)
non_negative_float = number_type(float, low=0)
jpeg_quality = number_type(int, low=0, high=100)  # PIL's range (75 its default, 95 about its best)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (`error: argument --x: ...`) and exit 2, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'error: {message} ({self.prog} -h lists the flags)\n')


class UserError(Exception):
    """Bad input (missing file, wrong weights, bad flag value): shown as one line, exit code 2."""


def name_list(value: str, allowed: Iterable[str], flag: str) -> list[str]:
    """The comma-separated names of `value`, each one of `allowed`; UserError naming `flag` otherwise."""
    items = [item.strip() for item in value.split(',') if item.strip()]
    if not items or any(item not in allowed for item in items):
        raise UserError(f"{flag}: expected names among {','.join(allowed)}, got {value!r}")
    return items


LOG_FORMAT = '%(levelname)s: %(message)s'


def exit_code(main: Callable[[], int | None]) -> int:
    """`main()`'s exit code: its return value (0 for None); 2 and one `error:` line on stderr for a UserError,
    130 on Ctrl-C."""
    try:
        return main() or 0
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


def run(main: Callable[[], int | None]) -> NoReturn:
    """Log INFO and above to stderr, call `main()` and exit with `exit_code(main)`."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    sys.exit(exit_code(main))


def print_path_lists(titled_paths: Iterable[tuple[str, Sequence[str]]]) -> None:
    """End-of-run listing: for each (title, paths) with paths, the title and one indented path a line."""
    for title, paths in titled_paths:
        if paths:
            print(f'{title}:\n' + '\n'.join(f'  {path}' for path in paths))
