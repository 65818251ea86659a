"""The default inference path: SPARNet re-implemented over weights folded once at load time.

What makes it faster than the plain module while computing the same function:
- batch norm (eval) and spectral norm (stored u, v) are folded into each conv's weight and bias;
- every `nearest x2 -> reflection pad -> 3x3 conv` becomes one stride-2 transposed 4x4 conv on the
  edge-padded input (16 instead of 36 multiply-adds per input pixel, no upsampled copy);
- channels-last maps (oneDNN's native layout: no reorder around each conv);
- each layer writes its last elementwise op straight into the padded buffer the next conv reads
  (no separate pad copy; the two hourglass branches share one), activations run in place, and
  `shortcut + out * mask` is one fused op;
- instance norm statistics computed exactly and faster than PyTorch's channels-last kernels;
- optional bf16 / fp16 weights and activations where the hardware does them natively.
Instance and group norm depend on the input, so they stay in the graph. `prepare_inference_net` never
modifies the network it is given: the plain module stays available as the reference path.
"""
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from archs.blocks import ConvLayer, HourGlassBlock, ResidualBlock
from archs.sparnet import SPARNet
from utils.devices import PRECISIONS, check_precision

# Rows: offsets -1..2 of a stride-2 transposed conv; columns: taps of the 3x3 kernel that applies
# to the nearest-upsampled, reflection-padded map. Output row 2a+p reads upsampled rows 2a+p-1..2a+p+1,
# i.e. input rows a-1, a, a (p=0) or a, a, a+1 (p=1); at the border the reflected row of the upsampled
# map is the edge row of the input, hence edge (replicate) padding of the input.
_UP_TAPS = torch.tensor([[0., 0., 1.], [0., 1., 1.], [1., 1., 0.], [1., 0., 0.]], dtype=torch.float64)


# Sub-pixel form of that transposed conv: for output phase p (row 2a+p), the transposed-conv kernel row feeding each
# row u = 0, 1, 2 of a 3x3 conv over the padded input at row a (None: no tap).
_PHASE_TAPS = ((3, 1, None), (None, 2, 0))


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """(in, out, 4, 4) stride-2 transposed-conv kernel -> (4 out, in, 3, 3) conv kernel whose channel o*4 + p*2 + q is
    output phase (p, q) of channel o: the same map as a 3x3 conv then a pixel shuffle (depth-to-space) by 2."""
    phases = weight.new_zeros(weight.shape[1], 2, 2, weight.shape[0], 3, 3)
    for p, rows in enumerate(_PHASE_TAPS):
        for q, cols in enumerate(_PHASE_TAPS):
            for u, row in enumerate(rows):
                for v, col in enumerate(cols):
                    if row is not None and col is not None:
                        phases[:, p, q, :, u, v] = weight[:, :, row, col].t()
    return phases.flatten(0, 2).contiguous()


def eval_conv_weight(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) the conv uses in eval mode, float64; spectral norm with the stored u, v.

    sigma = u . (W_mat v), no power iteration, as torch.nn.utils.spectral_norm does in eval mode.
    """
    if hasattr(conv, 'weight_orig'):
        weight = conv.weight_orig.detach().double()
        u, v = conv.weight_u.detach().double(), conv.weight_v.detach().double()
        weight = weight / torch.dot(u, weight.flatten(1) @ v)
    else:
        weight = conv.weight.detach().double()
    if conv.bias is None:
        return weight, torch.zeros(weight.shape[0], dtype=torch.float64, device=weight.device)
    return weight, conv.bias.detach().double()


def batch_norm_affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of an eval-mode BatchNorm2d, float64."""
    scale = norm.weight.detach().double() / torch.sqrt(norm.running_var.double() + norm.eps)
    return scale, norm.bias.detach().double() - norm.running_mean.double() * scale


def upsampling_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """(out, in, 3, 3) kernel after nearest x2 + reflection pad -> (in, out, 4, 4) transposed-conv kernel."""
    taps = _UP_TAPS.to(weight)
    return torch.einsum('dk,el,oikl->oide', taps, taps, weight).transpose(0, 1).contiguous()


def interior(padded: torch.Tensor) -> torch.Tensor:
    """The unpadded map inside a map padded by 1 (a view)."""
    return padded[:, :, 1:-1, 1:-1]


def fill_border(padded: torch.Tensor, mode: str) -> torch.Tensor:
    """Complete the 1-pixel border of `padded` from its interior: 'reflect' or 'replicate' padding."""
    if mode == 'reflect' and min(padded.shape[2:]) < 4:
        raise ValueError(f"reflection padding needs maps of at least 2x2, got {list(padded.shape[2:])}")
    src = 2 if mode == 'reflect' else 1
    padded[:, :, 0, 1:-1] = padded[:, :, src, 1:-1]
    padded[:, :, -1, 1:-1] = padded[:, :, -1 - src, 1:-1]
    padded[:, :, :, 0] = padded[:, :, :, src]
    padded[:, :, :, -1] = padded[:, :, :, -1 - src]
    return padded


def produce(write: Callable[[torch.Tensor | None], torch.Tensor], like: torch.Tensor,
            pad: str | None) -> torch.Tensor:
    """`write(out)` computed straight into the interior of a map padded by 1 (mode `pad`), or unpadded.

    Writing the last elementwise op of a layer into the padded buffer saves the full copy a separate
    pad costs. `write(None)` must return a fresh result; it is used when no padding is asked for
    and when tracing (ONNX export), where an explicit pad is the portable graph.
    """
    if pad is None:
        return write(None)
    if torch.jit.is_tracing():
        return F.pad(write(None), (1, 1, 1, 1), mode=pad)
    n, c, h, w = like.shape
    padded = torch.empty((n, c, h + 2, w + 2), dtype=like.dtype, device=like.device,
                         memory_format=torch.channels_last)
    write(interior(padded))
    return fill_border(padded, pad)


def channel_moments(pixels: torch.Tensor, shift: torch.Tensor,
                    chunk_elements: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, pixels, c) map, fp32 (n, c) estimate of its means -> fp32 (n, c) means and variances.

    Chunks of about `chunk_elements` minus the shift go to one fp32 buffer that stays in cache (one
    chunk per image on a GPU); batch norm's statistics kernel takes each chunk's mean and variance,
    combined exactly (Chan et al.). Two passes over a cached chunk, none over the full map: a sum
    and a Gram diagonal over a centred copy read it six times. The shift keeps the sums exact
    whatever the mean.
    """
    n, count, c = pixels.shape
    rows = count if pixels.is_cuda else max(1, chunk_elements // c)
    buffer = torch.empty(min(rows, count), c, dtype=torch.float32, device=pixels.device)
    sizes = torch.tensor([min(rows, count - start) for start in range(0, count, rows)], dtype=torch.float32,
                         device=pixels.device).unsqueeze(1)  # the same chunks in every image
    means, variances = [], []
    for i in range(n):
        moments = [torch.batch_norm_update_stats(torch.sub(chunk, shift[i], out=buffer[:len(chunk)]), None, None, 0.0)
                   for chunk in pixels[i].split(rows)]
        mean, variance = pooled_moments(torch.stack([m for m, _ in moments]), torch.stack([v for _, v in moments]),
                                        sizes)
        means.append(mean + shift[i])
        variances.append(variance)
    return torch.stack(means), torch.stack(variances)


def pooled_moments(means: torch.Tensor, variances: torch.Tensor, sizes: torch.Tensor,
                   dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) variance of the union of parts of `sizes` elements with these moments, over `dim`."""
    total = sizes.sum(dim, keepdim=True)
    mean = (sizes * means).sum(dim, keepdim=True) / total
    variance = (sizes * (variances + (means - mean).square())).sum(dim, keepdim=True) / total
    return mean.squeeze(dim), variance.squeeze(dim)


class InputNorm(nn.Module):
    """Instance or group norm: it depends on the input, so it cannot be folded.

    Statistics over the (pixels, channels) view of the channels-last map, shifted by an estimate of
    each mean (from a pixel subsample) and pooled over cache-sized chunks (`channel_moments`): exact
    to rounding whatever the mean, and 3-6x faster here than `var_mean` or `instance_norm` on
    channels-last maps; PyTorch's channels-last batch/group-norm kernels are fast but accumulate all
    pixels in sequence: up to 1e-3 off at 512x512, far more for channels whose mean dwarfs their
    spread. At bf16/fp16 the statistics are those of the map's values, in fp32; the map minus its
    mean rounded to that precision is rounded once more, then scaled.
    """

    SAMPLE_PIXELS = 4096
    CHUNK_ELEMENTS = 1 << 18

    def __init__(self, norm):
        super().__init__()
        self.groups = norm.num_groups if isinstance(norm, nn.GroupNorm) else None
        self.eps = norm.eps
        self.register_buffer('weight', norm.weight.detach().float().clone())
        self.register_buffer('bias', norm.bias.detach().float().clone())

    def forward(self, x, out=None):
        if torch.jit.is_tracing():
            if self.groups is not None:
                y = F.group_norm(x.float(), self.groups, self.weight, self.bias, self.eps)
            else:
                y = F.instance_norm(x.float(), weight=self.weight, bias=self.bias, eps=self.eps)
            return y.to(x.dtype) if out is None else out.copy_(y)
        n, c, h, w = x.shape
        size = c // self.groups if self.groups else 1
        pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view of a channels-last map
        sample = pixels[:, ::max(1, h * w // self.SAMPLE_PIXELS)]
        mean, var = channel_moments(pixels, sample.float().mean(1), self.CHUNK_ELEMENTS)
        if self.groups is not None:
            mean, var = (self._spread(moment, c) for moment in
                         pooled_moments(mean.view(n, self.groups, -1), var.view(n, self.groups, -1),
                                        torch.ones(1, 1, size, device=x.device), dim=2))
        shift = mean.to(x.dtype)
        scale = self.weight * torch.rsqrt(var.clamp_min(0) + self.eps)
        offset = self.bias - (mean - shift.float()) * scale
        out = torch.empty_like(x, memory_format=torch.channels_last) if out is None else out
        torch.sub(x, shift.view(n, c, 1, 1), out=out)
        return torch.addcmul(offset.view(n, c, 1, 1).to(x.dtype), out, scale.view(n, c, 1, 1).to(x.dtype),
                             out=out)

    def _spread(self, per_group, channels):
        """(n, groups) -> (n, channels), each group's value repeated over its channels."""
        if self.groups is None:
            return per_group
        return per_group.repeat_interleave(channels // self.groups, dim=1)


class Activation(nn.Module):
    """The activation of a ReluLayer: in place, or written into `out` (x is a temporary the caller owns)."""

    def __init__(self, relu_layer):
        super().__init__()
        func = relu_layer.func
        self.kind = type(func).__name__
        self.slope = getattr(func, 'negative_slope', 0.0)
        self.register_buffer('prelu_weight', func.weight.detach().clone() if self.kind == 'PReLU' else None)

    def forward(self, x, out=None):
        if out is None:
            return self._inplace(x)
        if self.kind == 'LeakyReLU':
            return torch.ops.aten.leaky_relu.out(x, self.slope, out=out)
        if self.kind == 'ReLU':
            return torch.clamp_min(x, 0, out=out)
        return out.copy_(self._inplace(x))

    def _inplace(self, x):
        if self.kind == 'LeakyReLU':
            return F.leaky_relu_(x, self.slope)
        if self.kind == 'ReLU':
            return F.relu_(x)
        if self.kind == 'PReLU':
            return F.prelu(x, self.prelu_weight.to(x.dtype))
        if self.kind == 'SELU':
            return F.selu(x, inplace=True)
        return x


class FastConv(nn.Module):
    """A ConvLayer with batch norm / spectral norm folded in, its upsampling made a transposed conv.

    Takes its input already padded by 1 (`input_pad`: 'replicate' before an upsampling conv, else
    'reflect') and can hand its output padded for the next layer (`out_pad`).
    """

    def __init__(self, layer: ConvLayer, dtype):
        super().__init__()
        weight, bias = eval_conv_weight(layer.conv2d)
        norm = layer.norm.norm
        self.norm = None
        if isinstance(norm, nn.BatchNorm2d):
            scale, shift = batch_norm_affine(norm)
            weight, bias = weight * scale.view(-1, 1, 1, 1), bias * scale + shift
        elif isinstance(norm, (nn.InstanceNorm2d, nn.GroupNorm)):
            self.norm = InputNorm(norm)
        has_bias = layer.conv2d.bias is not None or isinstance(norm, nn.BatchNorm2d)
        self.upsample = layer.upsample
        self.input_pad = 'replicate' if self.upsample else 'reflect'
        self.stride = layer.conv2d.stride
        if self.upsample:
            weight = upsampling_conv_weight(weight)
        self.register_buffer('weight', weight.to(dtype).contiguous(memory_format=torch.channels_last))
        self.register_buffer('bias', bias.to(dtype) if has_bias else None)
        self.act = Activation(layer.relu)
        self.subpixel = False

    def use_subpixel_upsampling(self) -> None:
        """Upsample as a 3x3 conv to four phases then a pixel shuffle (`subpixel_weight`): 2.25x the multiply-adds,
        but a plain conv, which int8 engines run (ONNX Runtime has no int8 transposed conv)."""
        if self.upsample and not self.subpixel:
            self.weight = subpixel_weight(self.weight).contiguous(memory_format=torch.channels_last)
            self.bias = None if self.bias is None else self.bias.repeat_interleave(4)
            self.subpixel = True

    def forward(self, x_padded, out_pad=None):
        if self.subpixel:
            y = F.pixel_shuffle(F.conv2d(x_padded, self.weight, self.bias), 2)
        elif self.upsample:
            y = F.conv_transpose2d(x_padded, self.weight, self.bias, stride=2, padding=3)
        else:
            y = F.conv2d(x_padded, self.weight, self.bias, self.stride)
        if self.norm is None:
            return produce(lambda out: self.act(y, out), y, out_pad)
        if out_pad is None:
            return self.act(self.norm(y))
        return self.act(produce(lambda out: self.norm(y, out), y, out_pad))


class FastPreactivation(nn.Module):
    """`preact_func`: a batch norm becomes one per-channel multiply-add before the activation."""

    def __init__(self, preact, dtype):
        super().__init__()
        norm = preact[0].norm
        self.norm = InputNorm(norm) if isinstance(norm, (nn.InstanceNorm2d, nn.GroupNorm)) else None
        scale, shift = batch_norm_affine(norm) if isinstance(norm, nn.BatchNorm2d) else (None, None)
        self.register_buffer('scale', None if scale is None else scale.view(1, -1, 1, 1).to(dtype))
        self.register_buffer('shift', None if shift is None else shift.view(1, -1, 1, 1).to(dtype))
        self.act = Activation(preact[1])

    def forward(self, x, out_pad):
        """act(norm(x)), padded by 1 with `out_pad` for the conv that follows."""
        if self.scale is not None:
            normalized = produce(lambda out: torch.addcmul(self.shift, x, self.scale, out=out), x, out_pad)
        elif self.norm is not None:
            normalized = produce(lambda out: self.norm(x, out), x, out_pad)
        else:
            normalized = produce(lambda out: x.clone() if out is None else out.copy_(x), x, out_pad)
        return self.act(normalized)


class FastHourGlass(nn.Module):
    """HourGlassBlock over a reflection-padded map; b1_L and b2_L share that padded input."""

    def __init__(self, hourglass: HourGlassBlock, dtype):
        super().__init__()
        self.depth = hourglass.depth
        levels = range(1, self.depth + 1)
        self.b1 = nn.ModuleList(FastConv(getattr(hourglass, f'b1_{L}'), dtype) for L in levels)
        self.b2 = nn.ModuleList(FastConv(getattr(hourglass, f'b2_{L}'), dtype) for L in levels)
        self.b3 = nn.ModuleList(FastConv(getattr(hourglass, f'b3_{L}'), dtype) for L in levels)
        self.bottom = FastConv(hourglass.b2_plus_1, dtype)
        self.out_conv = FastConv(hourglass.out_block[0], dtype)

    def _level(self, level, x_padded, out_pad):
        up1 = self.b1[level - 1](x_padded)
        low = self.b2[level - 1](x_padded, out_pad='reflect')
        if level > 1:
            low = self._level(level - 1, low, out_pad='replicate')
        else:
            low = self.bottom(low, out_pad='replicate')
        up2 = self.b3[level - 1](low)
        if up1.shape[2:] != up2.shape[2:]:
            up2 = F.interpolate(up2, size=up1.shape[2:], mode='nearest')
        if out_pad is None:
            return up1.add_(up2)
        return produce(lambda out: torch.add(up1, up2, out=out), up1, out_pad)

    def forward(self, x_padded):
        """The attention mask of the map whose reflection-padded version is `x_padded`."""
        return torch.sigmoid_(self.out_conv(self._level(self.depth, x_padded, 'reflect')))


class FastResidualBlock(nn.Module):
    """ResidualBlock: `shortcut(x) + conv2(conv1(preact(x))) * mask`, the product-sum fused.

    Takes x padded by 1 (`input_pad`) when its shortcut is a conv, and pads its output on request.
    """

    def __init__(self, block: ResidualBlock, dtype):
        super().__init__()
        shortcut = block.shortcut_func
        self.shortcut = FastConv(shortcut, dtype) if isinstance(shortcut, ConvLayer) else None
        self.input_pad = None if self.shortcut is None else self.shortcut.input_pad
        self.preact = FastPreactivation(block.preact_func, dtype)
        self.conv1 = FastConv(block.conv1, dtype)
        self.conv2 = FastConv(block.conv2, dtype)
        self.attention = FastHourGlass(block.att_func, dtype) if block.att_func.depth > 0 else None

    def forward(self, x, out_pad=None):
        x_inner = x if self.input_pad is None else interior(x)
        out = self.conv1(self.preact(x_inner, self.conv1.input_pad), out_pad='reflect')
        identity = x_inner if self.shortcut is None else self.shortcut(x)
        if self.attention is None:
            out = self.conv2(out)
            return produce(lambda dst: torch.add(identity, out, out=dst), out, out_pad)
        out_padded = self.conv2(out, out_pad='reflect')
        mask = self.attention(out_padded)
        out = interior(out_padded)
        return produce(lambda dst: torch.addcmul(identity, out, mask, out=dst), out, out_pad)


class FastSPARNet(nn.Module):
    """SPARNet for eval-mode inference over folded weights; NCHW float32 in and out, any precision inside."""

    def __init__(self, net: SPARNet, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.dtype = dtype
        blocks = [*net.encoder[1:], *net.res_layers, *net.decoder]
        self.in_conv = FastConv(net.encoder[0], dtype)
        self.blocks = nn.ModuleList(FastResidualBlock(block, dtype) for block in blocks)
        self.out_conv = FastConv(net.out_conv, torch.float32)
        self.pads = [block.input_pad for block in self.blocks[1:]] + [self.out_conv.input_pad]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.to(self.dtype, memory_format=torch.channels_last), (1, 1, 1, 1), mode='reflect')
        x = self.in_conv(x, out_pad=self.blocks[0].input_pad if len(self.blocks) else 'reflect')
        for block, out_pad in zip(self.blocks, self.pads):
            x = block(x, out_pad)
        return self.out_conv(x.float()).contiguous()

    def use_subpixel_upsampling(self) -> 'FastSPARNet':
        """Every upsampling conv in sub-pixel form (`FastConv.use_subpixel_upsampling`), for int8; returns self."""
        for module in self.modules():
            if isinstance(module, FastConv):
                module.use_subpixel_upsampling()
        return self


def prepare_inference_net(net: SPARNet, device: torch.device | str, precision: str = 'fp32') -> FastSPARNet:
    """A module computing `net.eval()(x)` (unclamped) on NCHW float32 input, without modifying `net`.

    `precision` is 'fp32', or 'bf16' / 'fp16' where `device` runs them natively (ValueError otherwise).
    """
    check_precision(device, precision)
    with torch.no_grad():
        return FastSPARNet(net, PRECISIONS[precision]).to(device).eval()
