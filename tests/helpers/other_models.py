"""Stand-ins for other projects' released files: their keys and shapes, random values (nothing downloaded).

Real-ESRGAN's files hold `{'params_ema': state}` with the key layout of its RRDBNet (`conv_first`,
`body.N.rdbM.convK`, `conv_body`, `conv_up1`, `conv_up2`, `conv_hr`, `conv_last`); x2plus reads the
photo pixel-unshuffled (12 input channels). A stand-in may have fewer blocks and features than the
released 23 and 64: spandrel reads both from the shapes (the growth channels must stay 32).
"""
import torch

REALESRGAN_GROWTH = 32


def realesrgan_shapes(scale: int, num_block: int = 23, num_feat: int = 64) -> dict:
    """{key: shape} of a Real-ESRGAN RRDBNet file of `scale` 2 or 4."""
    grow = REALESRGAN_GROWTH
    convs = {'conv_first': (num_feat, 3 * (4 if scale == 2 else 1))}
    for block in range(num_block):
        for rdb in (1, 2, 3):
            for index in range(1, 6):
                out = grow if index < 5 else num_feat
                convs[f'body.{block}.rdb{rdb}.conv{index}'] = (out, num_feat + (index - 1) * grow)
    convs.update({name: (num_feat, num_feat) for name in ('conv_body', 'conv_up1', 'conv_up2', 'conv_hr')})
    convs['conv_last'] = (3, num_feat)
    shapes = {}
    for name, (out, inp) in convs.items():
        shapes[f'{name}.weight'] = (out, inp, 3, 3)
        shapes[f'{name}.bias'] = (out,)
    return shapes


def realesrgan_file(path, scale: int, num_block: int = 1, num_feat: int = 16, seed: int = 0):
    """Write a Real-ESRGAN stand-in of `scale` at `path` (random values scaled so that outputs stay in range)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in realesrgan_shapes(scale, num_block, num_feat).items():
        fan_in = shape[1] * 9 if len(shape) == 4 else 1
        state[key] = torch.randn(shape, generator=generator) * (0.8 / fan_in ** 0.5 if len(shape) == 4 else 0.05)
    torch.save({'params_ema': state}, path)
    return str(path)
