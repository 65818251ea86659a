"""The released generators of the original project (GitHub release v0.1.0), in one table.

Like timm's `default_cfgs`: one entry per model, with its short name, file, URL, network flags,
input size, parameter count and the scores published for it. The README table, test.sh, the
benchmark, ONNX export, flag inference, scripts/reproduce.py and the tests all read this table;
no other copy of it exists. The release's archive of test sets is the other file fetched from it.
"""
import functools
from dataclasses import dataclass

from archs.generator_spec import GeneratorSpec
from weights.archive import check_archive
from weights.download import RemoteFile
from weights.generator import check_generator_file

RELEASE_URL = 'https://github.com/chaofengc/Face-SPARNet/releases/download/v0.1.0'
RELEASE_PAGE = 'https://github.com/chaofengc/Face-SPARNet/releases/tag/v0.1.0'


@dataclass(frozen=True)
class PublishedScores:
    """What the original project published for a model on its test set."""

    title: str  # the model's name in the original README's tables
    test_set: str  # a key of metrics.eval_sets.TEST_SETS
    metrics: tuple  # ('psnr', 'ssim') or ('fid',)
    released: tuple  # the original README's figures for the released weights, in the order of `metrics`
    paper: tuple | None = None  # the paper's figures, None for the models the paper does not have


@dataclass(frozen=True)
class ReleasedModel:
    name: str
    file_name: str
    spec: GeneratorSpec
    load_size: int
    params: int
    description: str
    published: PublishedScores
    sha256: str | None = None  # unknown for the original release: printed after a download, checked when known

    @property
    def aliases(self) -> tuple[str, str]:
        """The original file name, with and without `.pth`: what the original commands pass."""
        return (self.file_name, self.file_name.removesuffix('.pth'))

    @property
    def url(self) -> str:
        return f'{RELEASE_URL}/{self.file_name}'

    @property
    def remote(self) -> RemoteFile:
        """The file to fetch: kept only when it loads strictly into this model's network."""
        return RemoteFile(self.name, self.file_name, self.url, self.description,
                          functools.partial(check_generator_file, spec=self.spec), self.sha256,
                          size_hint=self.spec.state_bytes())

    def flags(self) -> str:
        """The command-line flags of this network, as the original commands spell them."""
        return f'{self.spec.flags()} --load_size {self.load_size}'


RELEASED_MODELS = {model.name: model for model in (
    ReleasedModel('sparnet', 'SPARNet-V16-S4-epoch20.pth',
                  GeneratorSpec('sparnet', 10, 'spar', 'bn'), 128, 10_518_867,
                  'SPARNet, 2D attention: x8 super-resolution of 16x16 faces to 128x128',
                  PublishedScores('SPARNet', 'helen', ('psnr', 'ssim'), (27.43, 0.8201), (26.97, 0.8026))),
    ReleasedModel('sparnet_light_attn3d', 'SPARNetLight_Attn3D-epoch20.pth',
                  GeneratorSpec('sparnet', 1, 'spar3d', 'bn'), 128, 5_242_211,
                  'SPARNet-Light, 3D attention: x8, 16x16 to 128x128 with half the parameters',
                  PublishedScores('SPARNet-Light-Attn3D', 'helen', ('psnr', 'ssim'), (27.39, 0.8189))),
    ReleasedModel('sparnethd_attn2d', 'SPARNetHD_V4_Attn2D_net_H-epoch10.pth',
                  GeneratorSpec('sparnethd', 10, 'spar', 'in'), 512, 85_793_412,
                  'SPARNetHD, 2D attention: blind restoration of 512x512 FFHQ-aligned faces',
                  PublishedScores('SPARNetHD-Attn2D', 'celeba_testn', ('fid',), (26.72,), (27.16,))),
    ReleasedModel('sparnethd_attn3d', 'SPARNetHD_V4_Attn3D_net_H-epoch10.pth',
                  GeneratorSpec('sparnethd', 10, 'spar3d', 'in'), 512, 90_093_793,
                  'SPARNetHD, 3D attention: blind restoration of 512x512 FFHQ-aligned faces',
                  PublishedScores('SPARNetHD-Attn3D', 'celeba_testn', ('fid',), (28.42,))),
)}
DEFAULT_PHOTO_MODEL = 'sparnethd_attn2d'  # what test_enhance_single_unalign.py uses without weights given

# The test sets of the paper's tables (metrics/eval_sets.py says what they hold); its size is not
# published: the download prints it. Kept only when it is a readable, safe tar archive.
TEST_SETS_ARCHIVE = RemoteFile('test_dirs', 'test_dirs.tgz', f'{RELEASE_URL}/test_dirs.tgz',
                               "the test sets of the paper's tables: Helen (DICNet's) and CelebA-TestN",
                               check_archive)


def find_released(name: str) -> ReleasedModel | None:
    """The ReleasedModel called `name` (short name, or file name with or without .pth; any case), or None."""
    key = name.strip().lower()
    for model in RELEASED_MODELS.values():
        if key in (alias.lower() for alias in (model.name, *model.aliases)):
            return model
    return None


def markdown_table() -> str:
    """The README's table of released models, generated from RELEASED_MODELS."""
    lines = ['| name | file | model | flags it implies | params | size (fp32) |',
             '|---|---|---|---|---:|---:|']
    for model in RELEASED_MODELS.values():
        lines.append(f'| `{model.name}` | `{model.file_name}` | {model.description} | `{model.flags()}` | '
                     f'{model.params:,} | ~{model.spec.state_bytes() / 1e6:.0f} MB |')
    return '\n'.join(lines)
