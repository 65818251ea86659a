"""SPARNetHD training degradation (FFHQ): random gray, blur, downscale, noise and JPEG on uint8 RGB faces.

Rewrites the published imgaug pipeline with OpenCV and NumPy. Every step is a plain function of an
HxWx3 uint8 RGB array and explicit parameters; `sample_plan` draws those parameters from a
`numpy.random.Generator`, so a seeded data loader gives the same pairs run after run.

Typical use in a dataset: `target, lr = degrade_pair(hr, rng, config)`; the target is the HR face,
turned gray whenever the LR one is (the published loader did so, otherwise the network would be
taught to invent colours).
"""
import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

from utils.cli import UserError

BLUR_KINDS = ('gaussian', 'box', 'median', 'motion')
INTERPOLATIONS = {'nearest': cv2.INTER_NEAREST, 'linear': cv2.INTER_LINEAR,
                  'area': cv2.INTER_AREA, 'cubic': cv2.INTER_CUBIC}
UPSCALE_INTERPOLATION = 'cubic'  # the published final resize (imgaug's default)


@dataclass(frozen=True)
class DegradationConfig:
    """Probabilities and ranges of the pipeline; defaults are the released SPARNetHD recipe.

    Ranges are (low, high), both ends included. Kernel sizes drawn even are rounded up to the next
    odd size for the median and motion blurs (their kernels need a centre pixel); the box blur
    takes even sizes as drawn, like the published code.
    """
    gray_prob: float = 0.3
    blur_prob: float = 0.5
    blur_kinds: tuple = BLUR_KINDS
    blur_gaussian_sigma: tuple = (3.0, 15.0)
    blur_box_kernel: tuple = (3, 15)
    blur_median_kernel: tuple = (3, 15)
    blur_motion_kernel: tuple = (5, 25)
    lr_size: tuple = (32, 127)
    lr_interpolations: tuple = tuple(INTERPOLATIONS)
    noise_prob: float = 0.2
    noise_sigma: tuple = (0.0, 0.1 * 255)
    noise_per_channel_prob: float = 0.5
    jpeg_prob: float = 0.7
    jpeg_quality: tuple = (35, 90)

    def __post_init__(self):
        for name in ('gray_prob', 'blur_prob', 'noise_prob', 'noise_per_channel_prob', 'jpeg_prob'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {value}")
        _check_range(self, 'blur_gaussian_sigma', minimum=0.0, strict=True)
        _check_range(self, 'blur_box_kernel', minimum=1)
        _check_range(self, 'blur_median_kernel', minimum=1)
        _check_range(self, 'blur_motion_kernel', minimum=1)
        _check_range(self, 'lr_size', minimum=1)
        _check_range(self, 'noise_sigma', minimum=0.0)
        _check_range(self, 'jpeg_quality', minimum=1, maximum=100)
        _check_choices(self, 'blur_kinds', BLUR_KINDS)
        _check_choices(self, 'lr_interpolations', tuple(INTERPOLATIONS))


def _check_range(config, name, minimum, maximum=math.inf, strict=False):
    value = getattr(config, name)
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name} must be two values LOW HIGH with LOW <= HIGH, got {tuple(value)}")
    if (value[0] <= minimum if strict else value[0] < minimum) or value[1] > maximum:
        bound = f"> {minimum}" if strict else f">= {minimum}"
        limit = f" and <= {maximum}" if maximum != math.inf else ''
        raise ValueError(f"{name} values must be {bound}{limit}, got {tuple(value)}")


def _check_choices(config, name, allowed):
    value = getattr(config, name)
    unknown = [v for v in value if v not in allowed]
    if not value or unknown:
        raise ValueError(f"{name} must be one or more of {allowed}, got {tuple(value)}")


def add_degradation_options(parser):
    """Register `--deg_<field>` for every `DegradationConfig` field, with the recipe's defaults."""
    defaults = DegradationConfig()
    group = parser.add_argument_group('degradation (SPARNetHD training LR faces)')
    group.add_argument('--deg_gray_prob', type=float, default=defaults.gray_prob,
                       help='probability of turning both HR and LR faces gray')
    group.add_argument('--deg_blur_prob', type=float, default=defaults.blur_prob,
                       help='probability of one blur, of a kind drawn from --deg_blur_kinds')
    group.add_argument('--deg_blur_kinds', nargs='+', choices=BLUR_KINDS, default=list(defaults.blur_kinds),
                       help='blurs to draw from, with equal chances')
    group.add_argument('--deg_blur_gaussian_sigma', type=float, nargs=2, metavar=('LOW', 'HIGH'),
                       default=list(defaults.blur_gaussian_sigma), help='Gaussian blur sigma range, pixels')
    group.add_argument('--deg_blur_box_kernel', type=int, nargs=2, metavar=('LOW', 'HIGH'),
                       default=list(defaults.blur_box_kernel), help='box blur kernel size range, pixels, inclusive')
    for kind in ('median', 'motion'):
        group.add_argument(f'--deg_blur_{kind}_kernel', type=int, nargs=2, metavar=('LOW', 'HIGH'),
                           default=list(getattr(defaults, f'blur_{kind}_kernel')),
                           help=f'{kind} blur kernel size range, pixels, inclusive; even draws become the next odd')
    group.add_argument('--deg_lr_size', type=int, nargs=2, metavar=('LOW', 'HIGH'), default=list(defaults.lr_size),
                       help='side of the square low-resolution face, pixels, inclusive')
    group.add_argument('--deg_lr_interpolations', nargs='+', choices=tuple(INTERPOLATIONS),
                       default=list(defaults.lr_interpolations), help='downscaling interpolations to draw from')
    group.add_argument('--deg_noise_prob', type=float, default=defaults.noise_prob,
                       help='probability of additive Gaussian noise')
    group.add_argument('--deg_noise_sigma', type=float, nargs=2, metavar=('LOW', 'HIGH'),
                       default=list(defaults.noise_sigma), help='noise standard deviation range, 0-255 scale')
    group.add_argument('--deg_noise_per_channel_prob', type=float, default=defaults.noise_per_channel_prob,
                       help='probability that the noise differs per channel (else one map for all three)')
    group.add_argument('--deg_jpeg_prob', type=float, default=defaults.jpeg_prob,
                       help='probability of JPEG compression')
    group.add_argument('--deg_jpeg_quality', type=int, nargs=2, metavar=('LOW', 'HIGH'),
                       default=list(defaults.jpeg_quality), help='JPEG quality range (1-100), inclusive')
    return parser


def config_from_options(opt):
    """The `DegradationConfig` of parsed `--deg_*` options; a bad value raises a one-line UserError."""
    values = {}
    for field in fields(DegradationConfig):
        value = getattr(opt, f'deg_{field.name}')
        values[field.name] = tuple(value) if isinstance(value, list) else value
    try:
        return DegradationConfig(**values)
    except ValueError as err:
        raise UserError(f"--deg_{err}") from None


def _check_image(img):
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        found = f"shape {img.shape} dtype {img.dtype}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {found}")


def _check_odd(ksize, step):
    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"{step} needs an odd kernel size >= 1, got {ksize}")


def to_grayscale(img):
    """Luma (ITU-R BT.601, OpenCV's RGB2GRAY) copied into all three channels."""
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def gaussian_kernel_size(sigma):
    """imgaug's Gaussian kernel side for `sigma` (the published GaussianBlur): 3.3, 2.9 or 2.6 sigma, >= 5, odd.

    The kernel covers 99 % of the weight for sigma < 3, 97 % below 5 and 95 % above: a truncated
    Gaussian, which blurs less than its sigma says.
    """
    if sigma < 3.0:
        size = 3.3 * sigma
    elif sigma < 5.0:
        size = 2.9 * sigma
    else:
        size = 2.6 * sigma
    size = int(max(size, 5))
    return size + 1 if size % 2 == 0 else size


def gaussian_blur(img, sigma):
    """Isotropic Gaussian blur as imgaug's GaussianBlur: OpenCV, kernel of `gaussian_kernel_size`, reflect-101."""
    size = gaussian_kernel_size(sigma)
    return cv2.GaussianBlur(img, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def box_blur(img, ksize):
    """Mean over a ksize x ksize window (any size >= 1; an even one shifts the image by half a pixel)."""
    return cv2.blur(img, (int(ksize), int(ksize)))


def median_blur(img, ksize):
    """Median over a ksize x ksize window; ksize must be odd."""
    _check_odd(ksize, 'median blur')
    return cv2.medianBlur(img, int(ksize))


def motion_kernel(ksize, angle, direction):
    """imgaug's MotionBlur kernel (the published recipe), ksize x ksize, summing to 1.

    The middle column holds the ramp `linspace(t, 1 - t, ksize)`, t = (direction + 1) / 2
    (direction -1..1: 0 is a uniform line, +-1 a ramp from one end to the other); the kernel is
    stored as uint8 (x 255, truncated), rotated by `angle` degrees (clockwise as displayed, as
    imgaug) about its centre pixel with bilinear interpolation and zeros outside, then normalised.
    """
    _check_odd(ksize, 'motion blur')
    start = (np.clip(direction, -1.0, 1.0) + 1.0) / 2.0
    line = np.zeros((ksize, ksize), np.float32)
    line[:, ksize // 2] = np.linspace(start, 1.0 - start, ksize)
    centre = (ksize - 1) / 2.0
    rotation = cv2.getRotationMatrix2D((centre, centre), -angle, 1.0)  # OpenCV turns counter-clockwise
    rotated = cv2.warpAffine((line * 255).astype(np.uint8), rotation, (ksize, ksize), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    kernel = rotated.astype(np.float32) / 255.0
    return kernel / kernel.sum()


def motion_blur(img, ksize, angle, direction=0.0):
    """Blur along a line of ksize pixels at `angle` degrees, weighted by `direction`, as imgaug's MotionBlur."""
    return cv2.filter2D(img, -1, motion_kernel(ksize, angle, direction))


def resize(img, height, width, interpolation):
    """Resize to height x width with one of INTERPOLATIONS ('nearest', 'linear', 'area', 'cubic')."""
    return cv2.resize(img, (int(width), int(height)), interpolation=INTERPOLATIONS[interpolation])


def add_gaussian_noise(img, sigma, per_channel, rng):
    """Add zero-mean Gaussian noise of std `sigma` (0-255 scale), rounded and clipped to uint8.

    per_channel draws an independent value for each of R, G, B; otherwise one value per pixel is
    added to all three (gray noise).
    """
    shape = img.shape if per_channel else img.shape[:2] + (1,)
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(np.rint(img + noise), 0, 255).astype(np.uint8)


def jpeg_compress(img, quality):
    """Encode and decode as JPEG at `quality` (1-100), with OpenCV's libjpeg and 4:2:0 chroma."""
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode an image of shape {img.shape}")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class Blur:
    """One drawn blur: `size` is sigma for 'gaussian', the kernel size otherwise; angle and direction for 'motion'."""
    kind: str
    size: float
    angle: float = 0.0
    direction: float = 0.0


def apply_blur(img, blur):
    if blur.kind == 'gaussian':
        return gaussian_blur(img, blur.size)
    if blur.kind == 'box':
        return box_blur(img, blur.size)
    if blur.kind == 'median':
        return median_blur(img, blur.size)
    if blur.kind == 'motion':
        return motion_blur(img, blur.size, blur.angle, blur.direction)
    raise ValueError(f"unknown blur kind {blur.kind!r}; expected one of {BLUR_KINDS}")


@dataclass(frozen=True)
class DegradationPlan:
    """The parameters drawn for one sample; None means the step is skipped."""
    grayscale: bool
    blur: Blur | None
    lr_size: int
    lr_interpolation: str
    noise_sigma: float | None
    noise_per_channel: bool
    jpeg_quality: int | None


def _odd_up(ksize):
    return ksize if ksize % 2 else ksize + 1


def _draw_int(rng, bounds):
    return int(rng.integers(bounds[0], bounds[1], endpoint=True))


def _draw_blur(rng, config):
    kind = config.blur_kinds[int(rng.integers(len(config.blur_kinds)))]
    if kind == 'gaussian':
        return Blur(kind, float(rng.uniform(*config.blur_gaussian_sigma)))
    if kind == 'box':
        return Blur(kind, _draw_int(rng, config.blur_box_kernel))
    if kind == 'median':
        return Blur(kind, _odd_up(_draw_int(rng, config.blur_median_kernel)))
    return Blur(kind, _odd_up(_draw_int(rng, config.blur_motion_kernel)), float(rng.uniform(0.0, 360.0)),
                float(rng.uniform(-1.0, 1.0)))


def sample_plan(rng, config=DegradationConfig()):
    """Draw every random choice of one sample (each step runs when `rng.random() < its prob`)."""
    grayscale = bool(rng.random() < config.gray_prob)
    blur = _draw_blur(rng, config) if rng.random() < config.blur_prob else None
    lr_size = _draw_int(rng, config.lr_size)
    lr_interpolation = config.lr_interpolations[int(rng.integers(len(config.lr_interpolations)))]
    noise_sigma, noise_per_channel = None, False
    if rng.random() < config.noise_prob:
        noise_sigma = float(rng.uniform(*config.noise_sigma))
        noise_per_channel = bool(rng.random() < config.noise_per_channel_prob)
    jpeg_quality = _draw_int(rng, config.jpeg_quality) if rng.random() < config.jpeg_prob else None
    return DegradationPlan(grayscale, blur, lr_size, lr_interpolation, noise_sigma, noise_per_channel,
                           jpeg_quality)


def apply_plan(hr, plan, rng):
    """(target, lr) for `plan`: target is hr, gray if planned; lr is degraded and resized back.

    rng only draws the noise values.
    """
    _check_image(hr)
    if plan.grayscale:
        target = to_grayscale(hr)
        # Each blur treats the channels alike: run on the one gray channel, 3x fewer pixels, the same result
        # (tests compare). The resizes are not always alike (cubic at some sizes), so they run on three.
        gray = np.ascontiguousarray(target[:, :, 0])
        lr = cv2.cvtColor(apply_blur(gray, plan.blur), cv2.COLOR_GRAY2RGB) if plan.blur else target
    else:
        target = hr
        lr = apply_blur(hr, plan.blur) if plan.blur else hr
    lr = resize(lr, plan.lr_size, plan.lr_size, plan.lr_interpolation)
    if plan.noise_sigma is not None:
        lr = add_gaussian_noise(lr, plan.noise_sigma, plan.noise_per_channel, rng)
    if plan.jpeg_quality is not None:
        lr = jpeg_compress(lr, plan.jpeg_quality)
    lr = resize(lr, hr.shape[0], hr.shape[1], UPSCALE_INTERPOLATION)
    return target, lr


def degrade_pair(hr, rng, config=DegradationConfig()):
    """A training pair (target, lr) from one HR face: what the SPARNetHD loader should call."""
    return apply_plan(hr, sample_plan(rng, config), rng)


def degrade(hr: np.ndarray, rng: np.random.Generator, config: DegradationConfig = DegradationConfig()) -> np.ndarray:
    """The low-quality version of `hr`, same size and dtype (gray with probability gray_prob)."""
    return degrade_pair(hr, rng, config)[1]
