"""Small random SPARNets covering every norm, attention and activation (the fast-path and ONNX tests)."""
import torch
from torch.nn import functional as F

from archs.blocks import add_spectral_norm
from archs.sparnet import SPARNet

SMALL = dict(min_ch=8, max_ch=32, in_size=32, out_size=32, min_feat_size=8, res_depth=1, bottleneck_size=16)
CONFIGS = {
    'bn_2d': (dict(SMALL), False),
    'bn_3d_up': (dict(SMALL, out_size=64, att_name='spar3d'), False),
    'bn_2d_sn': (dict(SMALL, res_depth=2), True),
    'bn_3d_sn': (dict(SMALL, att_name='spar3d'), True),
    'in_2d_sn': (dict(SMALL, norm_type='in'), True),
    'in_3d_sn_hd_like': (dict(SMALL, max_ch=64, in_size=64, out_size=64, min_feat_size=16, norm_type='in',
                              att_name='spar3d', bottleneck_size=8), True),
    'in_3d': (dict(SMALL, norm_type='in', att_name='spar3d'), False),
    'gn_prelu': (dict(SMALL, min_ch=32, max_ch=64, norm_type='gn', relu_type='prelu'), False),
    'none_relu_3d': (dict(SMALL, norm_type='none', relu_type='relu', att_name='spar3d'), False),
    'bn_selu_sn': (dict(SMALL, relu_type='selu'), True),
    'bn_no_attention_level': (dict(SMALL, bottleneck_size=32), False),
    'in_identity_act': (dict(SMALL, norm_type='in', relu_type='none'), False),
}


def randomize(net, seed=0):
    """Random weights, norm affines, running statistics and PReLU slopes: nothing folds trivially."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
            if name.endswith('running_var'):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith('running_mean'):
                tensor.normal_(0, 0.3)
            elif '.norm.' in name and name.endswith('weight'):
                tensor.uniform_(0.5, 1.5)
            elif '.norm.' in name and name.endswith('bias'):
                tensor.normal_(0, 0.3)
            elif '.func.weight' in name:
                tensor.uniform_(0.05, 0.4)
            elif name.endswith('bias'):
                tensor.normal_(0, 0.1)
        for module in net.modules():
            if hasattr(module, 'weight_orig'):  # power iteration, so that sigma is near the spectral norm
                matrix = module.weight_orig.flatten(1)
                for _ in range(10):
                    module.weight_v.copy_(F.normalize(matrix.t() @ module.weight_u, dim=0))
                    module.weight_u.copy_(F.normalize(matrix @ module.weight_v, dim=0))
    return net


def build(name, seed=0):
    """The network of CONFIGS[name], all its weights from `seed` (not from the test order's RNG state)."""
    config, spectral = CONFIGS[name]
    torch.manual_seed(seed)
    net = SPARNet(**config)
    if spectral:
        add_spectral_norm(net)
    return randomize(net, seed)


def max_rel_diff(output, reference):
    return ((output - reference).abs().max() / reference.abs().max()).item()


def random_input(net_config, batch=3, seed=1):
    torch.manual_seed(seed)
    size = net_config['in_size']
    return torch.rand(batch, 3, size, size) * 2 - 1
