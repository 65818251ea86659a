"""Reading any image PIL can open as 8-bit RGB, and finding images in folders."""
import os

import numpy as np
from PIL import Image, ImageOps

from .atomic import atomic_write
from .cli import UserError

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


class ImageReadError(Exception):
    """An input file could not be read as an image; the message names the file."""


def is_image_file(path):
    return path.lower().endswith(IMG_EXTENSIONS)


def list_files(root, skip_hidden=False):
    """Files below `root` (subfolders too, links followed), sorted, as paths relative to `root`.

    `skip_hidden` leaves out dot-files and dot-folders (.DS_Store, .ipynb_checkpoints, ...).
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such folder")
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        if skip_hidden:
            dirs[:] = [d for d in dirs if not d.startswith('.')]
            files = [f for f in files if not f.startswith('.')]
        found += [os.path.relpath(os.path.join(folder, name), root) for name in files]
    return sorted(found)


def list_images(root):
    """All image files below `root` (subfolders too), sorted, as paths relative to `root`."""
    return [path for path in list_files(root) if is_image_file(path)]


def no_images_message(flag, folder):
    return f"{flag} {folder}: no images found (looked for {' '.join(IMG_EXTENSIONS)}, subfolders too)"


def find_images(folder, flag, error=UserError):
    """`list_images(folder)`, or `error` in one line when it is no folder or holds no image.

    `flag` says where the folder came from (`--dataroot`, `--input_dir`, ...) in the message.
    """
    if not folder or not os.path.isdir(folder):
        raise error(f'{flag} {folder!r}: no such folder')
    rel_paths = list_images(folder)
    if not rel_paths:
        raise error(no_images_message(flag, folder))
    return rel_paths


def _to_rgb(img):
    """8-bit RGB from any mode: 16-bit and float scaled, alpha composited over white."""
    if img.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith('I;16') or arr.max() > 255:
            arr = arr / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8)).convert('RGB')
    if img.mode in ('RGBA', 'LA', 'PA') or (img.mode == 'P' and 'transparency' in img.info):
        rgba = img.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert('RGB')
    return img.convert('RGB')


def read_rgb(path):
    """Open `path` as an upright (EXIF-rotated) 8-bit RGB PIL image, or raise ImageReadError."""
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
            return _to_rgb(img)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"{path}: not a readable image ({err})") from err


def read_rgb_array(path):
    """`read_rgb` as an HxWx3 uint8 array."""
    return np.asarray(read_rgb(path))


def save_rgb(array, path, jpeg_quality=75):
    """Write an HxWx3 uint8 array; through a temporary file, so an interrupted run leaves no half image."""
    image_format = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    if image_format is None:
        raise ValueError(f"{path}: unknown image extension")
    options = {'quality': jpeg_quality} if image_format == 'JPEG' else {}
    with atomic_write(path) as handle:
        Image.fromarray(array).save(handle, format=image_format, **options)
