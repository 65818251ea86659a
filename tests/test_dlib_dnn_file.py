"""The reader of dlib's CNN face detector file: the real file's layers and options, dlib's own
detection scores reproduced by those layers in PyTorch (`MmodNet`), broken files refused, and the byte-level
decoders against values encoded by hand from dlib/serialize.h's rules."""
import math

import cv2
import dlib
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from faces import detector as detector_module
from faces import mmod_file
from faces.dlib_models import CNN_DETECTOR_FILE, dlib_model_path
from faces.mmod_detector import MmodNet
from faces.mmod_file import (
    Affine,
    ByteReader,
    Conv,
    DetectorWindow,
    MmodFileError,
    Relu,
    read_input_layer,
    read_mmod_detector,
)
from helpers.commands import run_in_process, run_whole_photos

CONV_SHAPES = [(16, 3, 5, 5), (32, 16, 5, 5), (32, 32, 5, 5), (45, 32, 5, 5), (45, 45, 5, 5), (45, 45, 5, 5),
               (1, 45, 9, 9)]
# dlib's defaults: padding 0 for strided convs, half the kernel otherwise (con_ in dlib/dnn/layers.h).
CONV_STRIDES = [(2, 2)] * 3 + [(1, 1)] * 4
CONV_PADDINGS = [(0, 0)] * 3 + [(2, 2)] * 3 + [(4, 4)]
# input_rgb_image_pyramid: the level-0 image sits this far from the tiled pyramid's top-left corner.
OUTER_PADDING = 11


@pytest.fixture(scope='module')
def detector_path():
    return dlib_model_path(CNN_DETECTOR_FILE)


@pytest.fixture(scope='module')
def detector_file(detector_path):
    return read_mmod_detector(detector_path)


def test_real_file_holds_the_face_detector_architecture(detector_file):
    layers = detector_file.layers
    assert [type(layer) for layer in layers] == [Conv, Affine, Relu] * 6 + [Conv]
    convs = [layer for layer in layers if isinstance(layer, Conv)]
    assert [conv.weight.shape for conv in convs] == CONV_SHAPES
    assert [conv.bias.shape for conv in convs] == [(shape[0],) for shape in CONV_SHAPES]
    assert [conv.stride for conv in convs] == CONV_STRIDES
    assert [conv.padding for conv in convs] == CONV_PADDINGS
    affines = [layer for layer in layers if isinstance(layer, Affine)]
    assert [affine.gamma.shape for affine in affines] == [(shape[0],) for shape in CONV_SHAPES[:-1]]
    arrays = [array for layer in layers for array in vars(layer).values() if isinstance(array, np.ndarray)]
    assert len(arrays) == 2 * len(convs) + 2 * len(affines)
    assert all(array.dtype == np.float32 and np.isfinite(array).all() for array in arrays)


def test_real_file_input_and_loss_options(detector_file):
    assert detector_file.avg_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert (detector_file.pyramid_padding, detector_file.pyramid_outer_padding) == (10, OUTER_PADDING)
    assert detector_file.pyramid_rate == 6
    assert detector_file.detector_windows == [DetectorWindow(80, 80, '')]
    # dlib relaxes the tightest overlap of its training boxes by a tenth toward 1.
    assert 0.3 < detector_file.nms_iou_thresh < 0.4
    assert detector_file.nms_percent_covered_thresh == 1.0
    assert (detector_file.use_bounding_box_regression, detector_file.bbr_lambda) == (False, 100.0)


@pytest.mark.slow
def test_layers_reproduce_dlib_detection_scores(detector_file, detector_path):
    """A face found at full scale scores dlib's value of the final map at its window: the map of the
    image laid as dlib lays pyramid level 0, (pixel - avg) / 256 with OUTER_PADDING zeros around.
    Output cell (row, col) is the 80 px window whose left = 8 col - 36, top = 8 row - 36 (measured).
    The face is far (> the ~190 px receptive field / 2) from the smaller levels below level 0."""
    photo = cv2.resize(data.astronaut(), (410, 410), interpolation=cv2.INTER_AREA)
    found = [(d.rect, d.confidence) for d in dlib.cnn_face_detection_model_v1(detector_path)(photo, 0)]
    full_scale = [(rect, score) for rect, score in found if (rect.width(), rect.height()) == (80, 80)]
    assert len(full_scale) == 1 and full_scale[0][0].bottom() < 200
    height, width = photo.shape[:2]
    tiled = np.zeros((3, height + 2 * OUTER_PADDING, width + 2 * OUTER_PADDING), np.float32)
    normalized = (photo.astype(np.float32) - np.float32(detector_file.avg_rgb)) / 256
    tiled[:, OUTER_PADDING:OUTER_PADDING + height, OUTER_PADDING:OUTER_PADDING + width] = normalized.transpose(2, 0, 1)
    with torch.no_grad():
        scores = MmodNet(detector_file.layers).eval()(torch.from_numpy(tiled)[None])[0, 0].numpy()
    rect, score = full_scale[0]
    assert (rect.left() + 36) % 8 == 0 and (rect.top() + 36) % 8 == 0
    row, col = (rect.top() + 36) // 8, (rect.left() + 36) // 8
    assert scores[row, col] == pytest.approx(score, abs=1e-5)
    assert np.unravel_index(scores.argmax(), scores.shape) == (row, col)


def test_truncated_file_is_refused_with_its_name(detector_path, tmp_path):
    content = open(detector_path, 'rb').read()
    for cut in (10, len(content) // 2, len(content) - 1):
        broken = tmp_path / f'cut_{cut}.dat'
        broken.write_bytes(content[:cut])
        with pytest.raises(MmodFileError, match=rf'cut_{cut}\.dat: truncated dlib file.*; reinstall it: pip install'):
            read_mmod_detector(broken)


@pytest.mark.parametrize('version, changed', [(b'loss_mmod_', b'loss_mmoe_'), (b'bn_con2', b'bn_con3'),
                                              (b'con_4', b'con_5'), (b'relu_', b'relu.')])
def test_changed_version_string_is_refused(detector_path, tmp_path, version, changed):
    content = open(detector_path, 'rb').read()
    broken = tmp_path / 'changed.dat'
    broken.write_bytes(content.replace(version, changed, 1))
    at = content.index(version) - 2  # the string's length (one control byte, one byte) comes first
    expected = f"changed.dat: not a dlib mmod detector file (expected '{version.decode()}' at byte {at}, " \
               f"found '{changed.decode()}')"
    with pytest.raises(ValueError, match=expected.replace('(', r'\(').replace(')', r'\)')):
        read_mmod_detector(broken)


def test_trailing_bytes_are_refused(detector_path, tmp_path):
    broken = tmp_path / 'longer.dat'
    broken.write_bytes(open(detector_path, 'rb').read() + b'\x00')
    with pytest.raises(ValueError, match='longer.dat: .*expected the end of the file .* found 1 more bytes'):
        read_mmod_detector(broken)


def reader(*chunks):
    return ByteReader(b''.join(chunks), 'hand.bin')


@pytest.mark.parametrize('encoded, value', [
    (b'\x01\x00', 0),  # dlib writes 0 with one value byte
    (b'\x00', 0),
    (b'\x01\x01', 1),
    (b'\x81\x01', -1),  # control bit 0x80: negative
    (b'\x02\x2c\x01', 300),  # 300 = 0x012c, little endian
    (b'\x82\x2c\x01', -300),
    (b'\x08\xff\xff\xff\xff\xff\xff\xff\x7f', 2 ** 63 - 1),
])
def test_integer_decoder(encoded, value):
    stream = reader(encoded)
    assert stream.integer() == value
    stream.expect_end()


@pytest.mark.parametrize('encoded, value', [
    # double 0.5: frexp -> 0.5 * 2**0, mantissa 2**52 (53 digits), exponent -53; six zero low bytes
    # shifted off: mantissa 16, exponent -5.
    (b'\x01\x10\x81\x05', 0.5),
    (b'\x01\x80\x81\x08', 0.5),  # float 0.5: mantissa 2**23 -> 128, exponent -24 + 16
    (b'\x01\x10\x81\x04', 1.0),
    # double -3.25: frexp -> -0.8125 * 2**2, mantissa -13 * 2**49, exponent -51 -> -26 * 2**-3.
    (b'\x81\x1a\x81\x03', -3.25),
    (b'\x01\x00\x01\x28', 0.0),  # float 0: mantissa 0, exponent -24 + 64
    (b'\x01\x00\x02\x00\x7d', math.inf),  # exponent 32000 marks infinity
    (b'\x01\x00\x02\x01\x7d', -math.inf),
])
def test_float_decoder(encoded, value):
    stream = reader(encoded)
    assert stream.float_() == value
    stream.expect_end()


def test_float_decoder_nan():
    assert math.isnan(reader(b'\x01\x00\x02\x02\x7d').float_())  # exponent 32002


def test_input_layer_version_2_holds_the_paddings():
    stream = reader(b'\x01\x18input_rgb_image_pyramid2', b'\x01\x10\x81\x04' * 2, b'\x01\x10\x81\x05',
                    b'\x01\x07', b'\x01\x00')
    assert read_input_layer(stream) == ((1.0, 1.0, 0.5), 7, 0)
    stream.expect_end()


def test_string_bool_and_tensor_decoders():
    floats = np.array([1.5, -2.0, 0.25, 8.0, 0.0, -0.5], '<f4')
    stream = reader(b'\x01\x05relu_', b'1', b'0',
                    b'\x01\x02', b'\x01\x01', b'\x01\x02', b'\x01\x03', b'\x01\x01', floats.tobytes())
    assert stream.string() == 'relu_'
    assert (stream.bool_(), stream.bool_()) == (True, False)
    np.testing.assert_array_equal(stream.tensor(), floats.reshape(1, 2, 3, 1))
    stream.expect_end()


@pytest.mark.parametrize('encoded, nbytes, signed', [(b'\x03\x01\x02\x03', 2, True), (b'\x81\x01', 8, False),
                                                     (b'\x11\x01', 8, True), (b'\x02\x01', 8, True)])
def test_integer_decoder_refuses_what_dlib_refuses(encoded, nbytes, signed):
    """Too many bytes for the C type, a negative unsigned, reserved bits set, or a cut stream."""
    with pytest.raises(ValueError, match='hand.bin: '):
        reader(encoded).integer(nbytes, signed)


class RecordingReader(ByteReader):
    """ByteReader noting where each integer it reads starts and ends: {what: [(start, end), ...]}."""

    def __init__(self, data, name):
        super().__init__(data, name)
        self.fields = {}

    def integer(self, nbytes=8, signed=True, what='an integer'):
        start = self.pos
        value = super().integer(nbytes, signed, what)
        self.fields.setdefault(what, []).append((start, self.pos))
        return value

    def tensor(self, what='a tensor'):
        values = super().tensor(what)
        self.fields.setdefault(what, []).append((self.pos - 4 * values.size, self.pos))
        return values


@pytest.fixture(scope='module')
def file_fields(detector_path):
    """(the real file's bytes, where each of its values lies)."""
    content = open(detector_path, 'rb').read()
    recorder = RecordingReader(content, detector_path)
    saved = mmod_file.ByteReader
    mmod_file.ByteReader = lambda data, name: recorder
    try:
        read_mmod_detector(detector_path)
    finally:
        mmod_file.ByteReader = saved
    return content, recorder.fields


def encode_integer(value):
    """dlib's encoding of an integer: control byte (0x80 negative, low bits the byte count), |value| little endian."""
    size = max(1, (abs(value).bit_length() + 7) // 8)
    return bytes([size | (0x80 if value < 0 else 0)]) + abs(value).to_bytes(size, 'little')


def forged(content, fields, what, occurrence, new):
    """`content` with the `occurrence`-th value read as `what` replaced by the bytes `new`, or for a tensor, its
    first value made NaN (`new` None); `occurrence` {occurrence: new bytes} replaces several values of `what`."""
    replacements = occurrence if isinstance(occurrence, dict) else {occurrence: new}
    for index in sorted(replacements, reverse=True):  # the last first: the earlier values stay where they were
        start, end = fields[what][index]
        value = replacements[index]
        if value is None:
            value = np.array([np.nan], '<f4').tobytes() + content[start + 4:end]
        content = content[:start] + value + content[end:]
    return content


FORGERIES = {  # case: (what, occurrence or {occurrence: new bytes}, new bytes or None, expected)
    'exponent overflow': ('avg_red (exponent)', 0, encode_integer(2000), 'avg_red within the range of a double'),
    'stride 0': ('stride_y', 0, encode_integer(0), 'con_ strides from 1 to 8'),
    'padding 2**30': ('padding_x', 2, encode_integer(2 ** 30), 'con_ paddings smaller than the filters'),
    'NaN mean colour': ('avg_green (exponent)', 0, encode_integer(32002), 'avg_green, a finite number'),
    'infinite mean colour': ('avg_blue (exponent)', 0, encode_integer(32000), 'avg_blue, a finite number'),
    'window width 0': ('the detector width', 0, encode_integer(0), 'a detector window of 1 to 1000 pixels'),
    'NaN weight': ('the con_ params', 1, None, 'the con_ params, finite values'),
    'NaN running variance': ('the bn_ running_variances', 0, None, 'the bn_ running_variances, finite values'),
    # 0 x 2**62 x 2**62 x 1: no value, but a product numpy cannot describe ("array is too big")
    'empty shape overflowing': ('a dimension of the cached x_grad', {1: encode_integer(2 ** 62),
                                                                     2: encode_integer(2 ** 62),
                                                                     3: encode_integer(1)}, None,
                                'the shape of the cached x_grad, of at most '),
}


@pytest.mark.parametrize('case', sorted(FORGERIES))
def test_values_the_network_cannot_use_are_refused_in_one_line(file_fields, tmp_path, case):
    """A forged value never reaches PyTorch (a division by zero, a terabyte allocation, wrong detections)."""
    content, fields = file_fields
    what, occurrence, new, expected = FORGERIES[case]
    broken = tmp_path / 'forged.dat'
    broken.write_bytes(forged(content, fields, what, occurrence, new))
    with pytest.raises(MmodFileError) as err:
        read_mmod_detector(broken)
    message = str(err.value)
    assert message.startswith(f'{broken}: not a dlib mmod detector file (expected {expected}')
    assert '\n' not in message and message.endswith(
        'reinstall it: pip install --force-reinstall --no-deps face_recognition_models')


def test_pyramid_paddings_beyond_any_use_are_refused():
    stream = reader(b'\x01\x18input_rgb_image_pyramid2', b'\x01\x10\x81\x04' * 3, encode_integer(2 ** 40),
                    b'\x01\x00')
    with pytest.raises(MmodFileError, match=r'hand.bin: .*expected pyramid paddings of at most 1000'):
        read_input_layer(stream)


def test_a_truncated_detector_file_stops_the_whole_photo_script_in_one_line(detector_path, released_checkpoint,
                                                                            tmp_path, monkeypatch):
    broken = tmp_path / 'mmod_human_face_detector.dat'
    broken.write_bytes(open(detector_path, 'rb').read()[:1000])
    monkeypatch.setattr(detector_module, 'dlib_model_path',
                        lambda name: str(broken) if name == CNN_DETECTOR_FILE else dlib_model_path(name))
    Image.fromarray(data.astronaut()).save(tmp_path / 'photo.png')
    result = run_in_process(run_whole_photos, ['--gpus', '0', '--pretrain_model_path',
                                               released_checkpoint('sparnet_light_attn3d'), '--test_img_path',
                                               str(tmp_path / 'photo.png'), '--results_dir', str(tmp_path / 'out')],
                            'test_enhance_single_unalign.py')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and errors[0].startswith(f'error: {broken}: truncated dlib file (needs ')
    assert errors[0].endswith('; reinstall it: pip install --force-reinstall --no-deps face_recognition_models')
    assert not (tmp_path / 'out').exists()
