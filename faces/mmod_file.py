"""dlib's CNN face detector file (mmod_human_face_detector.dat) read into numpy, without dlib.

The file is dlib's binary serialization (dlib/serialize.h) of the training network of
dnn_mmod_face_detection_ex.cpp; this reader follows dlib's own deserialize() functions field by
field so the PyTorch port gets the same weights and options dlib's `cnn_face_detection_model_v1`
uses. The stream order, from dlib/dnn/core.h: add_loss_layer writes its version, the loss
(loss_mmod_ and its mmod_options) and then the network; every add_layer writes its version, then
its subnetwork, then its own layer and its training state, so the versions of all add_layers come
first (outermost first) and the layers themselves follow in forward order, input first.
The reader knows this one architecture and checks every version string, version number and size
against it, and every value against what the network can use (finite weights and means, strides
and paddings the convolutions can run, a real window, overlap thresholds in [0, 1]): a file it
does not understand fails with one line (MmodFileError) naming it, never half-read.
"""
import math
from dataclasses import dataclass

import numpy as np

from utils.cli import UserError

# conv, batch norm, relu six times, then the 1-channel 9x9 conv that scores each window.
ARCHITECTURE = ('con', 'bn', 'relu') * 6 + ('con',)
# pyramid_down<6> is a template argument of the input layer: its rate is in the type, not the file.
PYRAMID_RATE = 6
# The defaults dlib's input_rgb_image_pyramid::deserialize sets for its version 1, which does
# not store the paddings (dlib/dnn/input.h).
DEFAULT_PYRAMID_PADDING = 10
DEFAULT_PYRAMID_OUTER_PADDING = 11
# mmod_options' defaults, which its deserialize keeps for versions before 4 (dlib/dnn/loss.h).
DEFAULT_USE_BBR = False
DEFAULT_BBR_LAMBDA = 100.0
# Exponent values float_details uses for infinities; any higher one means NaN (dlib/float_details.h).
FLOAT_INF, FLOAT_NINF = 32000, 32001
# What the detector's values may be for PyTorch to run it as dlib does (the real file: strides 2 and 1,
# paddings 0 to 4, an 80x80 window, paddings 10 and 11).
MAX_STRIDE = 8
MAX_PYRAMID_PADDING = 1000
MAX_WINDOW = 1000
REINSTALL = 'reinstall it: pip install --force-reinstall --no-deps face_recognition_models'


class MmodFileError(UserError, ValueError):
    """dlib's CNN detector file is not one this reader (and the network it builds) can use: one line."""


@dataclass(frozen=True, eq=False)
class Conv:
    """A convolution (cross-correlation, as in cuDNN and PyTorch): weight (out, in, kh, kw)."""
    weight: np.ndarray
    bias: np.ndarray
    stride: tuple
    padding: tuple


@dataclass(frozen=True, eq=False)
class Affine:
    """Per-channel y = gamma * x + beta: dlib's affine_ in conv mode, folded from a bn_con layer."""
    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class Relu:
    """max(x, 0)."""


@dataclass(frozen=True)
class DetectorWindow:
    """A sliding window of the mmod loss, in pixels of the pyramid level it is applied to."""
    width: int
    height: int
    label: str


@dataclass(frozen=True, eq=False)
class MmodDetectorFile:
    """What dlib's CNN face detector runs on: the layers in forward order, the input layer's
    settings and the mmod loss options its detection (to_label) uses.

    nms_iou_thresh / nms_percent_covered_thresh are dlib's test_box_overlap: two boxes overlap when
    intersection / area of their bounding box > iou_thresh, or intersection / either box's area >
    percent_covered_thresh. use_bounding_box_regression and bbr_lambda are not in this file's
    options (version 1): they hold dlib's defaults, as dlib's reader sets them. The file holds
    batch norm (bn_con2) layers; `layers` has them folded into Affine, as dlib runs them.
    """
    layers: list
    avg_rgb: tuple
    pyramid_padding: int
    pyramid_outer_padding: int
    pyramid_rate: int
    detector_windows: list
    nms_iou_thresh: float
    nms_percent_covered_thresh: float
    use_bounding_box_regression: bool
    bbr_lambda: float


class ByteReader:
    """dlib's serialized primitives over the file's bytes; every failure names the file and byte."""

    def __init__(self, data, name):
        self.data = data
        self.name = name
        self.pos = 0

    def fail(self, expected, found, at=None):
        at = self.pos if at is None else at
        raise MmodFileError(f'{self.name}: not a dlib mmod detector file (expected {expected} at byte {at}, '
                            f'found {found}); {REINSTALL}')

    def require(self, condition, expected, found):
        """fail() unless `condition`: a value the network cannot use."""
        if not condition:
            self.fail(expected, found)

    def take(self, count, what):
        if self.pos + count > len(self.data):
            raise MmodFileError(f'{self.name}: truncated dlib file (needs {count} bytes of {what} at byte '
                                f'{self.pos}, only {len(self.data) - self.pos} left); {REINSTALL}')
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def integer(self, nbytes=8, signed=True, what='an integer'):
        """A control byte (bit 0x80: negative, low 4 bits: byte count) then |value| little endian;
        nbytes is the size of the C type dlib reads into, which it refuses to overflow."""
        start = self.pos
        control = self.take(1, what)[0]
        size = control & 0x0F
        negative = bool(control & 0x80)
        if control & 0x70 or size > nbytes or (negative and not signed):
            self.fail(f'{what} ({"" if signed else "un"}signed, at most {nbytes} bytes)',
                      f'control byte 0x{control:02x}', start)
        value = int.from_bytes(self.take(size, what), 'little')
        return -value if negative else value

    def float_(self, what='a floating point number'):
        """float_details: mantissa (int64) then exponent (int16), value = mantissa * 2**exponent."""
        mantissa = self.integer(8, what=f'{what} (mantissa)')
        exponent = self.integer(2, what=f'{what} (exponent)')
        if exponent < FLOAT_INF:
            try:
                return math.ldexp(float(mantissa), exponent)
            except OverflowError:
                self.fail(f'{what} within the range of a double', f'{mantissa} * 2**{exponent}')
        return {FLOAT_INF: math.inf, FLOAT_NINF: -math.inf}.get(exponent, math.nan)

    def finite_float(self, what):
        """float_() that must be a finite number."""
        value = self.float_(what)
        self.require(math.isfinite(value), f'{what}, a finite number', value)
        return value

    def finite_tensor(self, what):
        """tensor() whose values must all be finite."""
        values = self.tensor(what)
        self.require(bool(np.isfinite(values).all()), f'{what}, finite values', 'NaN or infinity')
        return values

    def bool_(self, what='a bool'):
        """dlib writes a bool as the ASCII character '1' or '0'."""
        char = self.take(1, what)
        if char not in (b'0', b'1'):
            self.fail(f"{what} ('0' or '1')", repr(char), self.pos - 1)
        return char == b'1'

    def string(self, what='a string'):
        """An unsigned long length, then the bytes."""
        size = self.integer(8, signed=False, what=f'the length of {what}')
        return self.take(size, what).decode('latin-1')

    def version_string(self, *allowed):
        start = self.pos
        found = self.string(f'the version string {allowed[0]!r}')
        if found not in allowed:
            self.fail(' or '.join(repr(v) for v in allowed), repr(found), start)
        return found

    def version_number(self, allowed, what):
        start = self.pos
        found = self.integer(4, what=f'the version of {what}')
        if found not in allowed:
            self.fail(f'{what} version {" or ".join(map(str, allowed))}', found, start)
        return found

    def tensor_shape(self, what):
        """The four dimensions (num_samples, k, nr, nc) dlib writes as longs."""
        return tuple(self.integer(8, what=f'a dimension of {what}') for _ in range(4))

    def tensor(self, what='a tensor'):
        """resizable_tensor version 2: its shape, then the values as little-endian float32."""
        self.version_number((2,), what)
        start = self.pos
        shape = self.tensor_shape(what)
        if min(shape) < 0:
            self.fail(f'the shape of {what}', shape, start)
        count = math.prod(shape)  # more than the rest of the file holds: take() says the file is truncated
        # An empty tensor's other dimensions are checked too: numpy cannot describe 0 x 2**62 x 2**62 x 1.
        capacity = len(self.data) // 4
        if count == 0 and math.prod(dim for dim in shape if dim) > capacity:
            self.fail(f'the shape of {what}, of at most {capacity:,} values (what the file can hold)', shape, start)
        return np.frombuffer(self.take(4 * count, what), dtype='<f4').astype(np.float32).reshape(shape)

    def alias_tensor(self, what):
        """An alias_tensor is only a shape (version 1) over a slice of its layer's params."""
        self.version_number((1,), what)
        return self.tensor_shape(what)

    def expect_end(self):
        if self.pos != len(self.data):
            self.fail('the end of the file', f'{len(self.data) - self.pos} more bytes')


def read_conv(reader):
    """con_ version 4 (dlib/dnn/layers.h): params (filters then biases, flat), num_filters, nr, nc,
    stride_y, stride_x, padding_y, padding_x, the filters' and biases' shapes, four learning-rate
    and weight-decay multipliers."""
    reader.version_string('con_4')
    params = reader.finite_tensor('the con_ params').ravel()
    num_filters = reader.integer(8, what='num_filters')
    rows, cols = reader.integer(8, what='nr'), reader.integer(8, what='nc')
    stride = reader.integer(4, what='stride_y'), reader.integer(4, what='stride_x')
    padding = reader.integer(4, what='padding_y'), reader.integer(4, what='padding_x')
    filters = reader.alias_tensor('the con_ filters')
    biases = reader.alias_tensor('the con_ biases')
    for name in ('learning_rate', 'weight_decay', 'bias_learning_rate', 'bias_weight_decay'):
        reader.float_(f'the con_ {name} multiplier')
    n_weights = math.prod(filters)
    if (filters[0], filters[2:]) != (num_filters, (rows, cols)) or biases != (1, num_filters, 1, 1) \
            or params.size != n_weights + num_filters:
        reader.fail(f'con_ params of {num_filters} {rows}x{cols} filters and their biases',
                    f'params of {params.size} values, filters {filters}, biases {biases}')
    reader.require(min(num_filters, rows, cols, filters[1]) >= 1, 'con_ filters of at least 1x1x1',
                   f'filters {filters}')
    reader.require(all(1 <= value <= MAX_STRIDE for value in stride), f'con_ strides from 1 to {MAX_STRIDE}', stride)
    reader.require(0 <= padding[0] < rows and 0 <= padding[1] < cols, 'con_ paddings smaller than the filters',
                   f'padding {padding} for {rows}x{cols} filters')
    return Conv(weight=params[:n_weights].reshape(filters), bias=params[n_weights:].copy(),
                stride=stride, padding=padding)


def read_batch_norm(reader):
    """bn_con2, folded into the affine layer dlib's detector runs (affine_'s constructor from a
    bn_, dlib/dnn/layers.h): gamma' = gamma / sqrt(running_variance + eps),
    beta' = beta - gamma' * running_mean. The last batch's means and invstds are training state."""
    reader.version_string('bn_con2')
    params = reader.finite_tensor('the bn_ params').ravel()
    gamma_shape = reader.alias_tensor('the bn_ gamma')
    beta_shape = reader.alias_tensor('the bn_ beta')
    reader.tensor('the bn_ means')
    reader.tensor('the bn_ invstds')
    running_mean = reader.finite_tensor('the bn_ running_means').ravel()
    running_variance = reader.finite_tensor('the bn_ running_variances').ravel()
    reader.integer(8, signed=False, what='num_updates')
    reader.integer(8, signed=False, what='running_stats_window_size')
    for name in ('learning_rate', 'weight_decay', 'bias_learning_rate', 'bias_weight_decay'):
        reader.float_(f'the bn_ {name} multiplier')
    eps = reader.finite_float('the bn_ eps')
    channels = gamma_shape[1]
    if gamma_shape != (1, channels, 1, 1) or beta_shape != gamma_shape or params.size != 2 * channels \
            or running_mean.size != channels or running_variance.size != channels:
        reader.fail(f'bn_con params of gamma and beta for {channels} channels',
                    f'params of {params.size} values, running stats of {running_mean.size} and '
                    f'{running_variance.size}')
    reader.require(eps > 0 and bool((running_variance >= 0).all()), 'a positive bn_ eps and variances',
                   f'eps {eps}, smallest variance {running_variance.min(initial=0)}')
    # In float32, as dlib's matrix expressions over float tensors compute it.
    with np.errstate(all='ignore'):
        gamma = params[:channels] / np.sqrt(running_variance + np.float32(eps))
        beta = params[channels:] - gamma * running_mean
    reader.require(bool(np.isfinite(gamma).all() and np.isfinite(beta).all()), 'bn_ values giving a finite affine',
                   'NaN or infinity')
    return Affine(gamma=gamma, beta=beta)


def read_relu(reader):
    reader.version_string('relu_')
    return Relu()


LAYER_READERS = {'con': read_conv, 'bn': read_batch_norm, 'relu': read_relu}


def read_layer_state(reader, bottom):
    """The training state add_layer writes after its layer: three bools and cached tensors
    (add_layer version 2; the one over the input layer, version 3, ends differently)."""
    for name in ('this_layer_setup_called', 'gradient_input_is_stale', 'get_output_and_gradient_input_disabled'):
        reader.bool_(name)
    reader.tensor('the cached x_grad')
    reader.tensor('the cached output')
    if bottom:
        reader.tensor('the cached grad_final')
        reader.integer(4, signed=False, what='sample_expansion_factor')
    else:
        reader.tensor('the cached params_grad')


def read_input_layer(reader):
    """input_rgb_image_pyramid: the mean red, green, blue (floats) dlib subtracts before dividing
    by 256; its version 2 adds the pyramid paddings."""
    version = reader.version_string('input_rgb_image_pyramid', 'input_rgb_image_pyramid2')
    avg_rgb = tuple(reader.finite_float(f'avg_{color}') for color in ('red', 'green', 'blue'))
    reader.require(all(0 <= value <= 255 for value in avg_rgb), 'mean colours from 0 to 255', avg_rgb)
    if version != 'input_rgb_image_pyramid2':
        return avg_rgb, DEFAULT_PYRAMID_PADDING, DEFAULT_PYRAMID_OUTER_PADDING
    paddings = reader.integer(8, False, 'pyramid_padding'), reader.integer(8, False, 'pyramid_outer_padding')
    reader.require(max(paddings) <= MAX_PYRAMID_PADDING, f'pyramid paddings of at most {MAX_PYRAMID_PADDING}',
                   paddings)
    return (avg_rgb, *paddings)


def read_mmod_options(reader):
    """loss_mmod_ then mmod_options version 1 (dlib/dnn/loss.h): one detector window's width and
    height (no label), loss per false alarm, loss per miss, truth-match IoU, then overlaps_nms and
    overlaps_ignore, each test_box_overlap's (iou_thresh, percent_covered_thresh)."""
    reader.version_string('loss_mmod_')
    reader.version_number((1,), 'mmod_options')
    window = DetectorWindow(reader.integer(8, False, 'the detector width'),
                            reader.integer(8, False, 'the detector height'), label='')
    reader.require(1 <= window.width <= MAX_WINDOW and 1 <= window.height <= MAX_WINDOW,
                   f'a detector window of 1 to {MAX_WINDOW} pixels a side', f'{window.width}x{window.height}')
    for name in ('loss_per_false_alarm', 'loss_per_missed_target', 'truth_match_iou_threshold'):
        reader.float_(name)
    nms = reader.float_('the nms iou_thresh'), reader.float_('the nms percent_covered_thresh')
    reader.require(all(0 <= value <= 1 for value in nms), 'nms thresholds from 0 to 1', nms)
    reader.float_('the ignore iou_thresh')
    reader.float_('the ignore percent_covered_thresh')
    return [window], nms


def read_mmod_detector(path):
    """Read dlib's serialized mmod CNN (loss_mmod over the network above) from `path`; MmodFileError in one line."""
    try:
        with open(path, 'rb') as file:
            reader = ByteReader(file.read(), str(path))
    except OSError as err:
        raise MmodFileError(f'{path}: cannot be read ({err.strerror or err}); {REINSTALL}') from err
    reader.version_number((1,), 'add_loss_layer')
    windows, nms = read_mmod_options(reader)
    for _ in ARCHITECTURE[1:]:
        reader.version_number((2,), 'add_layer')
    reader.version_number((3,), 'the add_layer over the input layer')
    avg_rgb, padding, outer_padding = read_input_layer(reader)
    layers = []
    for index, kind in enumerate(ARCHITECTURE):
        layers.append(LAYER_READERS[kind](reader))
        read_layer_state(reader, bottom=index == 0)
    reader.expect_end()
    convs = [layer.weight.shape for layer in layers if isinstance(layer, Conv)]
    channels = [3] + [shape[0] for shape in convs]
    reader.require([shape[1] for shape in convs] == channels[:-1] and channels[-1] == len(windows),
                   'convolutions chained from 3 colours to one score per window', f'filters {convs}')
    return MmodDetectorFile(layers=layers, avg_rgb=avg_rgb, pyramid_padding=padding,
                            pyramid_outer_padding=outer_padding, pyramid_rate=PYRAMID_RATE, detector_windows=windows,
                            nms_iou_thresh=nms[0], nms_percent_covered_thresh=nms[1],
                            use_bounding_box_regression=DEFAULT_USE_BBR, bbr_lambda=DEFAULT_BBR_LAMBDA)
