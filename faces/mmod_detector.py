"""dlib's CNN face detector (`mmod_human_face_detector.dat`) run by PyTorch.

The same network and weights, image pyramid, box mapping and non-maximum suppression as
`dlib.cnn_face_detection_model_v1(image, 0)` (dlib/dnn/input.h, image_transforms/image_pyramid.h,
dnn/loss.h), so it finds the same faces in the same boxes, scores equal to float rounding. dlib
runs the convolutions on one core; PyTorch runs them on every core, or on the GPU.
"""
import math

import dlib
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faces.mmod_file import Affine, Conv, read_mmod_detector

# dlib's image pyramid stops before a level lower than this (compute_tiled_image_pyramid_details).
PYRAMID_MIN_HEIGHT = 5


def pyramid_sizes(height, width, rate):
    """[(height, width)] of every level of dlib's pyramid_down<rate>, the image itself first."""
    sizes = [(height, width)]
    scale = (rate - 1.0) / rate
    while True:
        height, width = math.floor(scale * height), math.floor(scale * width)
        if height * width == 0 or height < PYRAMID_MIN_HEIGHT:
            return sizes
        sizes.append((height, width))


def pyramid_layout(height, width, rate, padding, outer_padding):
    """([(left, top, right, bottom)] inclusive, (rows, cols)): where dlib tiles the pyramid of a height x width image.

    Levels go down the left column, then up the right edge from the bottom, as long as they keep
    clear of the image itself; the levels that do not fit are not searched.
    """
    sizes = pyramid_sizes(height, width, rate)
    total_height = sum(rows + padding for rows, _ in sizes) - 2 * padding
    column_height, previous_width = 0, 0
    for rows, cols in sizes:
        if cols <= width - previous_width - padding and (column_height - height) * 2 >= total_height - height:
            break
        column_height += rows + padding
        previous_width = cols
    column_height -= padding
    rects, y = [], outer_padding
    for rows, cols in sizes:
        if y >= column_height + outer_padding:
            break
        rects.append((outer_padding, y, outer_padding + cols - 1, y + rows - 1))
        y += rows + padding
    y -= padding
    right = outer_padding + width - 1
    for rows, cols in sizes[len(rects):]:
        rect = (right - cols + 1, y - rows, right, y - 1)
        first = rects[0]
        if max(rect[0], first[0]) <= min(rect[2], first[2]) and max(rect[1], first[1]) <= min(rect[3], first[3]):
            break  # it would overlap the image itself
        rects.append(rect)
        y -= rows + padding
    return rects, (column_height + 2 * outer_padding, width + 2 * outer_padding)


def nearest_level(rects, x, y):
    """Index of the first rect holding (x, y), else of the nearest one (dlib's nearest_rect)."""
    best, best_distance = 0, math.inf
    for index, (left, top, right, bottom) in enumerate(rects):
        if left <= x <= right and top <= y <= bottom:
            return index
        distance = math.hypot(min(max(x, left), right) - x, min(max(y, top), bottom) - y)
        if distance < best_distance:
            best, best_distance = index, distance
    return best


def boxes_overlap(a, b, iou, covered):
    """dlib's test_box_overlap on inclusive (left, top, right, bottom) boxes.

    Its "IoU" divides by the area of the box enclosing both, not of their union.
    """
    def area(left, top, right, bottom):
        return max(0, right - left + 1) * max(0, bottom - top + 1)
    inner = area(max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    if inner == 0:
        return False
    outer = area(min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    return inner / outer > iou or inner / area(*a) > covered or inner / area(*b) > covered


class MmodNet(nn.Module):
    """The detector's convolutions, each affine (folded batch norm) folded into the conv before it."""

    def __init__(self, layers):
        super().__init__()
        modules = []
        for layer in layers:
            if isinstance(layer, Conv):
                conv = nn.Conv2d(layer.weight.shape[1], layer.weight.shape[0], layer.weight.shape[2:],
                                 stride=layer.stride, padding=layer.padding)
                conv.weight.data = torch.from_numpy(np.array(layer.weight, dtype=np.float32))
                conv.bias.data = torch.from_numpy(np.array(layer.bias, dtype=np.float32))
                modules.append(conv)
            elif isinstance(layer, Affine):
                conv = modules[-1]
                gamma, beta = torch.from_numpy(layer.gamma), torch.from_numpy(layer.beta)
                conv.weight.data *= gamma[:, None, None, None]
                conv.bias.data = conv.bias.data * gamma + beta
            else:
                modules.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*modules)

    def forward(self, x):
        return self.layers(x)

    def output_shape(self, rows, cols):
        """(rows, cols) of the score map for an input of rows x cols: 0 or less when too small for the kernels."""
        for conv in self.layers:
            if isinstance(conv, nn.Conv2d):
                if min(rows + 2 * conv.padding[0], cols + 2 * conv.padding[1]) < max(conv.kernel_size):
                    return 0, 0
                rows = (rows + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
                cols = (cols + 2 * conv.padding[1] - conv.kernel_size[1]) // conv.stride[1] + 1
        return rows, cols

    def output_to_input(self):
        """((scale, offset) for y, for x): output position p is centred on input position scale * p + offset.

        As dlib's output_tensor_to_input_tensor: each conv maps p to p * stride - padding + kernel // 2.
        """
        mapping = []
        for axis in (0, 1):
            scale, offset = 1, 0
            for conv in self.layers:
                if isinstance(conv, nn.Conv2d):
                    offset += scale * (conv.kernel_size[axis] // 2 - conv.padding[axis])
                    scale *= conv.stride[axis]
            mapping.append((scale, offset))
        return mapping


class MmodDetector:
    """Callable: HxWx3 uint8 RGB image -> [(left, top, right, bottom, score)], as dlib's CNN detector at upsample 0."""

    def __init__(self, path, device='cpu'):
        found = read_mmod_detector(path)
        self.device = torch.device(device)
        self.net = MmodNet(found.layers).eval().to(self.device)
        self.mean = torch.tensor(found.avg_rgb, dtype=torch.float32, device=self.device).view(3, 1, 1)
        self.pyramid = (found.pyramid_rate, found.pyramid_padding, found.pyramid_outer_padding)
        self.windows = found.detector_windows
        self.nms = (found.nms_iou_thresh, found.nms_percent_covered_thresh)
        self._levels_up = dlib.pyramid_down(found.pyramid_rate)

    def tiled_pyramid(self, image, rects, shape):
        """1x3xHxW tensor of `shape`: the image less the mean colour, / 256, at rects[0], its smaller levels at the
        others."""
        tiled = torch.zeros(1, 3, *shape, device=self.device)
        pixels = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1).float()
        left, top, right, bottom = rects[0]
        tiled[0, :, top:bottom + 1, left:right + 1] = (pixels - self.mean) / 256
        for (left, top, right, bottom), (p_left, p_top, p_right, p_bottom) in zip(rects[1:], rects):
            previous = tiled[:, :, p_top:p_bottom + 1, p_left:p_right + 1]
            tiled[:, :, top:bottom + 1, left:right + 1] = F.interpolate(
                previous, size=(bottom - top + 1, right - left + 1), mode='bilinear', align_corners=True)
        return tiled

    def windows_found(self, scores, rects):
        """[((left, top, right, bottom), score)] of every window scoring above 0, best first, in image pixels."""
        (scale_y, offset_y), (scale_x, offset_x) = self.net.output_to_input()
        found = []
        for channel, row, col in zip(*np.nonzero(scores > 0)):
            x, y = scale_x * int(col) + offset_x, scale_y * int(row) + offset_y
            width, height = self.windows[channel].width, self.windows[channel].height
            level = nearest_level(rects, x, y)
            left, top = rects[level][:2]
            box = dlib.drectangle(x - (width - 1) / 2 - left, y - (height - 1) / 2 - top,
                                  x + (width - 1) / 2 - left, y + (height - 1) / 2 - top)
            rect = dlib.rectangle(self._levels_up.rect_up(box, level))
            found.append(((rect.left(), rect.top(), rect.right(), rect.bottom()), float(scores[channel, row, col])))
        return sorted(found, key=lambda box_score: -box_score[1])

    def __call__(self, image):
        if min(image.shape[:2]) == 0:
            return []
        rects, shape = pyramid_layout(image.shape[0], image.shape[1], *self.pyramid)
        if min(self.net.output_shape(*shape)) <= 0:
            return []  # too small to hold a window (dlib fails on it)
        with torch.inference_mode():
            scores = self.net(self.tiled_pyramid(image, rects, shape))[0].float().cpu().numpy()
        kept = []
        for box, score in self.windows_found(scores, rects):
            if not any(boxes_overlap(other, box, *self.nms) for other, _ in kept):
                kept.append((box, score))
        return [(*box, score) for box, score in kept]
