"""int8 inference (models/int8.py, faces/calibration.py, --precision int8 / auto): the quantized network against the
fp32 one, its cache (named by all it depends on), its calibration faces, 7-bit weights on CPUs without VNNI, auto's
choice and the refusals, through the API and test.py."""
import logging
import os

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

import models.int8 as int8
from api import FaceEnhancer, UserError
from api.choices import auto_precision, default_batch_size, float_precision
from archs.folded_sparnet import FastSPARNet
from archs.generator_spec import GeneratorSpec, random_generator
from faces.calibration import BUNDLED_COUNT, BUNDLED_ID, CalibrationFaces
from helpers.commands import run_test_py
from helpers.faces import face_images
from helpers.small_nets import CONFIGS, build, max_rel_diff, random_input
from metrics.psnr_ssim import psnr
from models.onnx_generator import OnnxGenerator
from utils.image_io import read_rgb_array

pytestmark = pytest.mark.usefixtures('one_torch_thread')
TINY = GeneratorSpec('sparnet', 1, 'spar', 'bn')
TINY_FLAGS = ['--gpus', '0', '--model', 'sparnet', '--res_depth', '1', '--load_size', '64', '--num_threads', '0']


def int8_weights(path):
    """{node name: its int8 weight values} of the quantized convs of the ONNX file at `path`."""
    model = onnx.load(path)
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        if node.op_type == 'DequantizeLinear' and initializers.get(node.input[0], np.zeros(0)).dtype == np.int8:
            found[node.name] = initializers[node.input[0]]
    return found


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    """Random weights of a one-block SPARNet, in a folder of their own (the quantized models go beside them)."""
    path = tmp_path_factory.mktemp('tiny_int8') / 'tiny.pth'
    torch.manual_seed(0)
    torch.save(random_generator(TINY).state_dict(), path)
    return str(path)


@pytest.fixture(scope='module')
def lr_faces(tmp_path_factory):
    folder = tmp_path_factory.mktemp('lr')
    for index, face in enumerate(face_images(4, seed=5)):
        Image.fromarray(face).resize((8, 8), Image.BICUBIC).save(folder / f'face_{index}.png')
    return folder


@pytest.mark.slow
def test_test_py_int8_is_near_fp32_and_quantized_once(tiny_weights, lr_faces, tmp_path, caplog):
    """test.py --precision int8 against --precision fp32 on the same faces: close (random weights, so the bound is
    loose: a wrong range or a broken graph is far below it), not equal (quantized), the model cached beside the
    weights and used again by the next run."""
    flags = [*TINY_FLAGS, '--pretrain_model_path', tiny_weights, '--dataroot', str(lr_faces)]
    caplog.set_level(logging.INFO)
    assert run_test_py([*flags, '--save_as_dir', str(tmp_path / 'fp32')]) == 0
    assert run_test_py([*flags, '--save_as_dir', str(tmp_path / 'int8'), '--precision', 'int8']) == 0
    quantized = [name for name in os.listdir(os.path.dirname(tiny_weights)) if name.endswith('.onnx')]
    assert len(quantized) == 1 and quantized[0].startswith('tiny.int8-')
    assert 'quantizing' in caplog.text
    for name in sorted(os.listdir(tmp_path / 'fp32')):
        fp32, quantized_output = (read_rgb_array(tmp_path / kind / name) for kind in ('fp32', 'int8'))
        assert 30 < psnr(fp32, quantized_output, channels='rgb') < 80, name
    path = os.path.join(os.path.dirname(tiny_weights), quantized[0])
    mtime = os.path.getmtime(path)
    caplog.clear()
    assert run_test_py([*flags, '--save_as_dir', str(tmp_path / 'again'), '--precision', 'int8']) == 0
    assert 'quantizing' not in caplog.text and os.path.getmtime(path) == mtime
    for name in os.listdir(tmp_path / 'int8'):
        assert np.array_equal(read_rgb_array(tmp_path / 'int8' / name), read_rgb_array(tmp_path / 'again' / name))


@pytest.mark.slow
def test_test_py_calibrates_on_its_calibration_folder(tiny_weights, lr_faces, tmp_path):
    """--calibration reaches the quantizer: its faces make another model than the bundled ones; a broken image in it
    stops the run in one line naming the file, before any output."""
    flags = [*TINY_FLAGS, '--pretrain_model_path', tiny_weights, '--dataroot', str(lr_faces), '--precision', 'int8']
    before = {name for name in os.listdir(os.path.dirname(tiny_weights)) if name.endswith('.onnx')}
    assert run_test_py([*flags, '--save_as_dir', str(tmp_path / 'mine'), '--calibration', str(lr_faces)]) == 0
    after = {name for name in os.listdir(os.path.dirname(tiny_weights)) if name.endswith('.onnx')}
    assert len(after - before) == 1
    broken = tmp_path / 'broken_calibration'
    broken.mkdir()
    (broken / 'cut.png').write_bytes(b'\x89PNG cut')
    with pytest.raises(UserError, match=r'^--calibration: .*cut.png: not a readable image'):
        run_test_py([*flags, '--save_as_dir', str(tmp_path / 'none'), '--calibration', str(broken)])
    assert not (tmp_path / 'none').exists() or not os.listdir(tmp_path / 'none')


@pytest.mark.slow
def test_first_and_last_convs_stay_fp32_and_the_others_are_int8(tmp_path):
    net = build('bn_2d').eval()
    path = int8.quantize_generator(net, str(tmp_path / 'q.onnx'), 32, CalibrationFaces().inputs('sparnet', 32),
                                   reduce_range=False)
    weights = int8_weights(path)
    convs = [node.name for node in onnx.load(path).graph.node if node.op_type in ('Conv', 'ConvTranspose')]
    quantized_convs = [name for name in convs if not name.startswith(('/in_conv/', '/out_conv/'))]
    assert len(weights) == len(quantized_convs) > 10
    assert not any(name.startswith(('/in_conv/', '/out_conv/')) for name in weights)
    assert max(int(abs(w).max()) for w in weights.values()) == 127  # 8 bits: each channel's largest weight
    with_reduced_range = int8.quantize_generator(net, str(tmp_path / 'r.onnx'), 32,
                                                 CalibrationFaces().inputs('sparnet', 32), reduce_range=True)
    assert max(int(abs(w).max()) for w in int8_weights(with_reduced_range).values()) == 64  # 7 bits


@pytest.mark.parametrize('flags, reduced', [({'avx2': True}, True), ({'avx2': True, 'avx512_vnni': True}, False),
                                            ({'avx2': True, 'avx_vnni': True}, False), ({'amx_int8': True}, False)])
def test_seven_bit_weights_only_without_vnni(monkeypatch, flags, reduced):
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: flags)
    assert int8.needs_reduced_range() is reduced


def test_the_cached_file_is_named_by_all_it_depends_on(tmp_path, monkeypatch):
    weights = tmp_path / 'w.pth'
    weights.write_bytes(b'weights one')
    first = int8.int8_model_path(str(weights), 128, BUNDLED_ID, False)
    assert os.path.dirname(first) == str(tmp_path) and os.path.basename(first).startswith('w.int8-')
    assert int8.int8_model_path(str(weights), 128, BUNDLED_ID, False) == first
    others = {int8.int8_model_path(str(weights), 512, BUNDLED_ID, False),
              int8.int8_model_path(str(weights), 128, 'folder-digest', False),
              int8.int8_model_path(str(weights), 128, BUNDLED_ID, True)}
    weights.write_bytes(b'weights two')
    others.add(int8.int8_model_path(str(weights), 128, BUNDLED_ID, False))
    weights.write_bytes(b'weights one')
    monkeypatch.setattr(int8, 'onnxruntime_version', lambda: '0.0.1')
    others.add(int8.int8_model_path(str(weights), 128, BUNDLED_ID, False))
    assert len(others) == 5 and first not in others
    monkeypatch.setenv('SPARNET_HOME', str(tmp_path / 'cache'))
    monkeypatch.setattr(int8.os, 'access', lambda path, mode: False)  # a read-only weights folder
    assert os.path.dirname(int8.int8_model_path(str(weights), 128, BUNDLED_ID, False)) == \
        str(tmp_path / 'cache' / 'int8')


def test_calibration_faces_of_a_folder_and_bundled(tmp_path):
    bundled = CalibrationFaces()
    inputs = list(bundled.inputs('sparnet', 64))
    assert bundled.identity == BUNDLED_ID and bundled.count == len(inputs) == BUNDLED_COUNT
    assert all(x.shape == (1, 3, 64, 64) and x.dtype == np.float32 and -1 <= x.min() < x.max() <= 1 for x in inputs)
    hd = list(bundled.inputs('sparnethd', 64))
    assert not np.allclose(hd[0], inputs[0])  # degraded otherwise
    folder = tmp_path / 'faces'
    folder.mkdir()
    for index, face in enumerate(face_images(3)):
        Image.fromarray(face).save(folder / f'{index}.png')
    mine = CalibrationFaces(str(folder))
    assert mine.count == 3 and mine.identity != BUNDLED_ID
    first = next(mine.inputs('sparnet', 48))
    expected = np.asarray(Image.fromarray(face_images(1)[0]).resize((48, 48), Image.BICUBIC))
    assert np.allclose(first[0].transpose(1, 2, 0), expected / 127.5 - 1, atol=1e-6)
    Image.fromarray(face_images(1, seed=9)[0]).save(folder / '0.png')
    assert CalibrationFaces(str(folder)).identity != mine.identity  # a changed face: another calibration
    (folder / 'broken.png').write_bytes(b'\x89PNG cut')
    with pytest.raises(UserError, match=r'^--calibration: .*broken.png: not a readable image.*remove it'):
        list(CalibrationFaces(str(folder)).inputs('sparnet', 48))
    with pytest.raises(UserError, match='--calibration .*no such folder'):
        CalibrationFaces(str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserError, match='--calibration .*empty: no images found'):
        CalibrationFaces(str(tmp_path / 'empty'))


@pytest.mark.parametrize('bf16, int8_ok, expected', [(True, True, 'bf16'), (False, True, 'int8'),
                                                     (False, False, 'fp32'), (True, False, 'bf16')])
def test_auto_on_the_cpu(monkeypatch, bf16, int8_ok, expected):
    monkeypatch.setattr('api.choices.native_bf16_cpu', lambda: bf16)
    assert auto_precision(torch.device('cpu'), int8_ok)[0] == expected
    assert float_precision(torch.device('cpu'), 'auto') == ('bf16' if bf16 else 'fp32')
    assert float_precision(torch.device('cpu'), 'int8') == 'fp32'
    assert default_batch_size(torch.device('cpu'), 'auto') == default_batch_size(
        torch.device('cpu'), auto_precision(torch.device('cpu'))[0])


@pytest.mark.parametrize('bf16, expected', [(True, 'bf16'), (False, 'fp16')])
def test_auto_on_a_gpu(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda including_emulation=True: bf16)
    assert auto_precision(torch.device('cuda'))[0] == expected


@pytest.mark.slow
def test_auto_says_what_it_chose_and_runs_it(tiny_weights, monkeypatch, caplog):
    monkeypatch.setattr('api.choices.native_bf16_cpu', lambda: False)
    caplog.set_level(logging.INFO)
    enhancer = FaceEnhancer(tiny_weights, device='cpu', precision='auto', load_size=64)
    assert enhancer.precision == 'int8' and isinstance(enhancer.enhancer.net, int8.Int8Generator)
    assert '--precision auto: int8 (this CPU has no native bf16)' in caplog.text
    reference = FaceEnhancer(tiny_weights, device='cpu', precision='auto', load_size=64, reference_impl=True)
    assert reference.precision == 'fp32'


def test_int8_refusals(tiny_weights, tmp_path):
    with pytest.raises(UserError, match=r'^--precision int8 runs on the CPU \(ONNX Runtime\), not on cuda'):
        FaceEnhancer(tiny_weights, device='cuda', precision='int8')
    with pytest.raises(UserError, match='^--precision int8 runs the quantized fast path; drop --reference_impl'):
        FaceEnhancer(tiny_weights, device='cpu', precision='int8', reference_impl=True)
    with pytest.raises(UserError, match=r'^--onnx_model runs .*; drop --precision int8'):
        FaceEnhancer(onnx_model=str(tmp_path / 'm.onnx'), device='cpu', precision='int8')
    with pytest.raises(UserError, match="argument --precision: invalid choice: 'int4'"):
        FaceEnhancer(tiny_weights, device='cpu', precision='int4')
    with pytest.raises(UserError, match='--calibration .*no such folder'):
        FaceEnhancer(tiny_weights, device='cpu', precision='int8', calibration=str(tmp_path / 'none'))


@pytest.mark.slow
def test_the_int8_network_takes_each_size_it_is_given(tiny_weights):
    """The photo pipeline gives 512x512 faces to a network loaded for test.py's size: each size has its own model."""
    enhancer = FaceEnhancer(tiny_weights, device='cpu', precision='int8', load_size=64)
    net = enhancer.enhancer.net
    assert list(net.models) == [64]
    faces = np.stack([np.asarray(Image.fromarray(face).resize((48, 48))) for face in face_images(2)])
    assert enhancer.enhance(faces).shape == (2, 48, 48, 3)
    assert sorted(net.models) == [48, 64]
    with pytest.raises(ValueError, match='square inputs'):
        net(torch.zeros(1, 3, 48, 64))


@pytest.mark.parametrize('name', ['bn_3d_up', 'in_3d_sn_hd_like', 'gn_prelu'])
def test_subpixel_upsampling_computes_the_same_function(name):
    net = build(name).eval()
    x = random_input(CONFIGS[name][0], batch=2)
    with torch.no_grad():
        reference = net(x)
        subpixel = FastSPARNet(net).use_subpixel_upsampling()
        assert sum(module.subpixel for module in subpixel.modules() if hasattr(module, 'subpixel')) >= 2
        assert max_rel_diff(subpixel(x), reference) <= 1e-5


@pytest.mark.slow
def test_pads_run_on_the_uint8_maps_with_the_same_result(tmp_path, monkeypatch):
    """Each DequantizeLinear -> reflection Pad -> QuantizeLinear becomes the Pad alone: the same outputs."""
    net = build('bn_3d_up').eval()
    folded = int8.quantize_generator(net, str(tmp_path / 'folded.onnx'), 32, CalibrationFaces().inputs('sparnet', 32),
                                     reduce_range=False)
    monkeypatch.setattr(int8, 'pads_on_uint8', lambda model: 0)
    unfolded = int8.quantize_generator(net, str(tmp_path / 'unfolded.onnx'), 32,
                                       CalibrationFaces().inputs('sparnet', 32), reduce_range=False)

    def pads_after_dequantize(path):
        graph = onnx.load(path).graph
        producer = {output: node.op_type for node in graph.node for output in node.output}
        return sum(1 for node in graph.node if node.op_type == 'Pad' and producer.get(node.input[0]) ==
                   'DequantizeLinear')
    assert pads_after_dequantize(unfolded) > 10 and pads_after_dequantize(folded) == 0
    x = random_input(CONFIGS['bn_3d_up'][0], batch=2)
    assert torch.allclose(OnnxGenerator(folded)(x), OnnxGenerator(unfolded)(x), atol=1e-6, rtol=0)


def test_the_calibration_is_in_the_cache_key(tmp_path, monkeypatch):
    weights = tmp_path / 'w.pth'
    weights.write_bytes(b'weights')
    keys = set()
    for method, percentile in (('Percentile', 99.999), ('Percentile', 99.99), ('MinMax', 99.999)):
        monkeypatch.setattr(int8, 'CALIBRATION_METHOD', method)
        monkeypatch.setattr(int8, 'PERCENTILE', percentile)
        keys.add(int8.int8_model_path(str(weights), 128, BUNDLED_ID, False))
    assert len(keys) == 3


@pytest.mark.usefixtures('narrow_sparnethd')
def test_auto_keeps_sparnethd_in_fp32_without_bf16(tmp_path, monkeypatch, caplog):
    """SPARNetHD's int8 is below the quality bound: auto does not pick it (int8 stays available when asked for)."""
    monkeypatch.setattr('api.choices.native_bf16_cpu', lambda: False)
    path = tmp_path / 'hd.pth'
    torch.save(random_generator(GeneratorSpec('sparnethd', 1, 'spar', 'in')).state_dict(), path)
    caplog.set_level(logging.INFO)
    enhancer = FaceEnhancer(str(path), device='cpu', precision='auto', load_size=64)
    assert enhancer.precision == 'fp32' and not isinstance(enhancer.enhancer.net, int8.Int8Generator)
    assert '--precision auto: fp32 (this CPU has no native bf16, and int8 holds the quality bounds for SPARNet only)' \
        in caplog.text
