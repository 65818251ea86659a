"""ONNX export and the ONNX Runtime generator against the reference network.

Tolerance: max |ONNX Runtime - reference| / max |reference| <= 1e-4 in fp32 on these small maps
(~1e-6 in practice; ONNX Runtime only sums in another order). On SPARNetHD's 512 x 512 maps its
instance-norm sums drift to ~2e-4, hence the export script's 1e-3.
"""

import onnx
import pytest
import torch

from helpers.commands import run_in_process
from helpers.small_nets import CONFIGS, build, max_rel_diff, random_input
from models.onnx_generator import OnnxError, OnnxGenerator, export_onnx
from scripts import export_onnx as export_script

pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tiny nets: one thread is fastest


@pytest.mark.slow
@pytest.mark.parametrize('name', ['bn_3d_up', 'in_3d_sn_hd_like', 'gn_prelu', 'bn_selu_sn'])
def test_onnx_runtime_equals_reference_at_any_batch(tmp_path, name):
    net = build(name).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    path = export_onnx(net, str(tmp_path / f'{name}.onnx'), CONFIGS[name][0]['in_size'])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    generator = OnnxGenerator(path, 'cpu')
    for batch in (1, 3):
        x = random_input(CONFIGS[name][0], batch=batch)
        with torch.no_grad():
            reference = net(x)
        output = generator(x)
        assert isinstance(output, torch.Tensor) and output.dtype == torch.float32
        assert output.shape == reference.shape
        assert max_rel_diff(output, reference) <= 1e-4


def test_exported_graph_has_dynamic_batch_and_checks(tmp_path):
    path = export_onnx(build('bn_2d'), str(tmp_path / 'sub' / 'm.onnx'), 32, opset=17)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == 'batch' and [d.dim_value for d in dims[1:]] == [3, 32, 32]


@pytest.mark.slow
def test_onnx_generator_errors(tmp_path):
    with pytest.raises(OnnxError, match='no such ONNX file'):
        OnnxGenerator(str(tmp_path / 'missing.onnx'))
    broken = tmp_path / 'broken.onnx'
    broken.write_bytes(b'not a protobuf at all')
    with pytest.raises(OnnxError, match='broken.onnx: not a loadable ONNX model'):
        OnnxGenerator(str(broken))
    generator = OnnxGenerator(export_onnx(build('bn_2d'), str(tmp_path / 'm.onnx'), 32))
    with pytest.raises(ValueError, match=r'takes \(N, 3, 32, 32\) inputs, got \(1, 3, 64, 64\)'):
        generator(torch.zeros(1, 3, 64, 64))


@pytest.mark.slow
def test_export_script_writes_and_verifies(tmp_path, released_checkpoint):
    out = tmp_path / 'light.onnx'
    argv = ['--pretrain_model_path', released_checkpoint('sparnet_light_attn3d'), '--output', str(out),
            '--check_batch', '2']  # the flags come from the file
    result = run_in_process(export_script.main, argv, 'export_onnx.py')
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    assert 'max relative difference' in result.stdout


def test_export_script_reports_wrong_weights(tmp_path, released_checkpoint):
    argv = ['--model', 'sparnet', '--att_name', 'spar', '--pretrain_model_path',
            released_checkpoint('sparnet_light_attn3d'), '--output', str(tmp_path / 'x.onnx')]
    result = run_in_process(export_script.main, argv, 'export_onnx.py')
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1 and 'do not fit' in result.stderr
    assert not (tmp_path / 'x.onnx').exists()


@pytest.mark.slow
def test_export_failing_its_check_leaves_no_file_and_keeps_an_earlier_one(tmp_path, released_checkpoint, monkeypatch,
                                                                          capsys):
    script = export_script
    monkeypatch.setattr(script, 'TOLERANCE', -1.0)  # any difference, even 0, fails the check
    out = tmp_path / 'light.onnx'
    argv = ['--pretrain_model_path', released_checkpoint('sparnet_light_attn3d'), '--output', str(out)]
    assert script.main(argv) == 1
    assert f'{out}: not written: ONNX Runtime differs from PyTorch by' in capsys.readouterr().err
    assert list(tmp_path.glob('light.onnx*')) == []
    out.write_bytes(b'an earlier export')
    assert script.main(argv) == 1
    assert out.read_bytes() == b'an earlier export' and list(tmp_path.glob('light.onnx*')) == [out]
