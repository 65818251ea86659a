"""Export a SPARNet / SPARNetHD generator to ONNX (dynamic batch) and check it against PyTorch.

    python -m scripts.export_onnx --pretrain_model_path sparnethd_attn2d --output sparnethd.onnx

--pretrain_model_path takes a .pth file, a released model name or an http(s) URL, and the network
flags left out come from the weights, as for test.py.

The graph is the fast inference path in fp32 (norms folded). The check runs ONNX Runtime and the
plain PyTorch module on the same random batch and prints their maximum relative difference
(~1e-6 for SPARNet; ~2e-4 for SPARNetHD, whose instance norms ONNX Runtime sums over 512 x 512
pixels with fp32 drift); exit code 1 when it exceeds 1e-3, 2 on bad input; nothing is written then.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import os
import sys

import torch

from archs.generator_spec import GeneratorSpec
from models.onnx_generator import DEFAULT_OPSET, OnnxGenerator, export_onnx
from options.generator_flags import add_generator_arguments, resolve_generator_options
from utils.cli import ArgumentParser, UserError, non_negative_int, output_file, positive_int, run
from utils.output_plan import OutputPlan
from weights.generator import load_generator_weights

TOLERANCE = 1e-3


class CheckFailed(Exception):
    """ONNX Runtime's output on the exported file is not PyTorch's (beyond TOLERANCE, or not finite)."""


def onnx_check(net, in_size, batch):
    """The `check` of export_onnx: ONNX Runtime on the written file against `net` on one random batch."""
    def check(path):
        torch.manual_seed(0)
        x = torch.rand(batch, 3, in_size, in_size) * 2 - 1
        with torch.inference_mode():
            reference = net(x)
        difference = ((OnnxGenerator(path)(x) - reference).abs().max() / reference.abs().max()).item()
        print(f'ONNX Runtime vs PyTorch, batch {batch}: max relative difference {difference:.2e}')
        if not difference <= TOLERANCE:  # NaN too
            raise CheckFailed(f'ONNX Runtime differs from PyTorch by {difference:.2e}, above the tolerance '
                              f'{TOLERANCE:g}')
    return check


def build_parser():
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    add_generator_arguments(parser)
    parser.add_argument('--output', type=output_file, default=None,
                        help='ONNX file to write (default: the weights file name with .onnx, beside a local file, '
                             'else in the current folder)')
    parser.add_argument('--in_size', type=positive_int, default=None,
                        help='input size (default: that of the released model, else 128 sparnet, 512 sparnethd)')
    parser.add_argument('--opset', type=positive_int, default=DEFAULT_OPSET,
                        help=f'ONNX opset (default: {DEFAULT_OPSET})')
    parser.add_argument('--check_batch', type=non_negative_int, default=1,
                        help='batch size of the ONNX Runtime vs PyTorch check (default: 1; 0 skips it)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.pretrain_model_path:
        raise UserError('--pretrain_model_path is required: a .pth file, a released model name or an http(s) URL')
    given_path = args.pretrain_model_path
    args.load_size = args.in_size
    vars(args).update(resolve_generator_options(args))
    spec, in_size = GeneratorSpec.from_options(args), args.load_size
    weights_path = args.pretrain_model_path
    folder = os.path.dirname(weights_path) if os.path.isfile(given_path) else ''
    output = args.output or os.path.join(folder, os.path.splitext(os.path.basename(weights_path))[0] + '.onnx')
    plan = OutputPlan()
    plan.reads('--pretrain_model_path', weights_path)
    plan.writes_file('--output', output)
    plan.check()
    net = load_generator_weights(spec.build(), weights_path, spec).eval()
    check = onnx_check(net, in_size, args.check_batch) if args.check_batch > 0 else None
    try:
        with plan.claimed():
            export_onnx(net, output, in_size, args.opset, check)
    except OSError as err:
        raise UserError(f'{output}: could not write the ONNX file ({err})') from err
    except CheckFailed as err:
        print(f'{output}: not written: {err}', file=sys.stderr)
        return 1
    print(f'wrote {output} (input N x 3 x {in_size} x {in_size}, dynamic N, opset {args.opset})')
    return 0


if __name__ == '__main__':
    run(main)
