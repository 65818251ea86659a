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


def _save_params_ema(net, path, seed):
    """Save `net`'s state dict as `{'params_ema': state}` with random values drawn from `seed` (spandrel's copies of
    the architectures have the released files' keys and shapes: it loads those files strictly into them)."""
    generator = torch.Generator().manual_seed(seed)
    state = {key: (torch.randn(value.shape, generator=generator) * 0.02 if value.is_floating_point() else value)
             for key, value in net.state_dict().items()}
    torch.save({'params_ema': state}, path)
    return str(path)


def gfpgan_file(path, seed: int = 0):
    """A GFPGAN v1.3 / v1.4 stand-in (GFPGANv1Clean, 512 px, the released size: spandrel fixes every setting)."""
    from spandrel.architectures.GFPGAN import GFPGAN
    net = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                 num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    return _save_params_ema(net, path, seed)


def restoreformer_file(path, seed: int = 0):
    """A RestoreFormer stand-in with the released layout at 32 channels (released: 64) and a 64-entry codebook."""
    from spandrel.architectures.RestoreFormer import RestoreFormer
    net = RestoreFormer(n_embed=64, embed_dim=32, ch=32, out_ch=3, ch_mult=(1, 2, 2, 4, 4, 8), num_res_blocks=2,
                        attn_resolutions=(16,), dropout=0.0, in_channels=3, resolution=512, z_channels=32,
                        double_z=False, enable_mid=True, head_size=8)
    return _save_params_ema(net, path, seed)


def codeformer_file(path, seed: int = 0):
    """A CodeFormer stand-in with the released layout but one transformer layer (released: 9)."""
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer
    net = CodeFormer(dim_embd=512, n_head=8, n_layers=1, codebook_size=1024, latent_size=256,
                     connect_list=['32', '64', '128', '256'])
    return _save_params_ema(net, path, seed)
