"""List the released models, other weights and the test sets with what is already downloaded; download some or all.

    python -m scripts.download_weights                        # the table, and what is cached where
    python -m scripts.download_weights sparnethd_attn2d       # fetch one (names, file names or --all)
    python -m scripts.download_weights --all --dir weights/   # into a folder, e.g. to copy to a cluster
    python -m scripts.download_weights test_dirs fid_inception --dir weights/   # what reproduce.py also needs
    python -m scripts.download_weights --markdown             # the README's table of released models

Without --dir, files go to the weights cache ($SPARNET_HOME, else ~/.cache/sparnet), where
test.py, train.py and the other scripts look for them. Each file is checked after download (it
must load strictly into its network) and kept only then. Exit code: 0, 1 when a download failed
(the others are still fetched), 2 on an unknown name.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import logging
import os

from losses.perceptual import VGG19_WEIGHTS
from metrics.fid import INCEPTION_WEIGHTS
from utils.cli import ArgumentParser, UserError, output_folder, run
from utils.output_plan import OutputPlan
from weights.download import cache_dir
from weights.released import RELEASED_MODELS, TEST_SETS_ARCHIVE, find_released, markdown_table

log = logging.getLogger('download_weights')
OTHER_FILES = {remote.name: remote for remote in (VGG19_WEIGHTS, INCEPTION_WEIGHTS, TEST_SETS_ARCHIVE)}


def build_parser():
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('names', nargs='*',
                        help=f"what to download: {', '.join([*RELEASED_MODELS, *OTHER_FILES])} "
                             '(or a released file name)')
    parser.add_argument('--all', action='store_true', help='download the four released models')
    parser.add_argument('--dir', type=output_folder, default=None,
                        help='download into this folder instead of the weights cache (use it there with '
                             '--weights_dir, or pass the files with --pretrain_model_path)')
    parser.add_argument('--markdown', action='store_true', help="print the README's table of released models")
    return parser


def remote_file(name):
    """The RemoteFile called `name` (a released model's name or file name, vgg19, fid_inception)."""
    if name in OTHER_FILES:
        return OTHER_FILES[name]
    released = find_released(name)
    if released is None:
        raise UserError(f"{name!r}: unknown; choose among {', '.join([*RELEASED_MODELS, *OTHER_FILES])}")
    return released.remote


def listing(folder):
    """One line per file: name, file, MB and where it is (or 'not downloaded')."""
    lines = [f'weights folder: {cache_dir(folder)}']
    remotes = [model.remote for model in RELEASED_MODELS.values()] + list(OTHER_FILES.values())
    width = max(len(remote.name) for remote in remotes)
    for remote in remotes:
        path = remote.local_path(folder)
        where = f'{os.path.getsize(path) / 1e6:7.1f} MB  {path}' if path else '   not downloaded'
        lines.append(f'{remote.name:<{width}}  {where}  ({remote.description})')
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.markdown:
        print(markdown_table())
        return 0
    remotes = [remote_file(name) for name in args.names]
    if args.all:
        remotes = [model.remote for model in RELEASED_MODELS.values()] + remotes
    if not remotes:
        print(listing(args.dir))
        return 0
    plan = OutputPlan()
    plan.writes_folder('--dir', args.dir, exclusive=False)  # downloads are safe beside other runs' downloads
    plan.check()
    with plan.claimed():
        failed = fetch_all(remotes, args.dir)
    if len(failed) > 1:
        log.error('%d of %d downloads failed: %s', len(failed), len(remotes), ', '.join(failed))
    return 1 if failed else 0


def fetch_all(remotes, folder):
    """Fetch each file into `folder` (None: the cache); returns the names of those that failed."""
    failed = []
    for remote in {remote.name: remote for remote in remotes}.values():
        try:
            already_there = remote.local_path(folder) is not None
            print(f"{remote.name}: {remote.fetch(folder)}{' (already there)' if already_there else ''}")
        except UserError as err:
            log.error('%s', err)
            failed.append(remote.name)
    return failed


if __name__ == '__main__':
    run(main)
