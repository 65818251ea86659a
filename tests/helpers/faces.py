"""Real faces for the tests, cut from scikit-image's astronaut photo (no files of ../shared needed)."""
import os

import numpy as np
import skimage.data
from PIL import Image


def face_images(count, seed=0, size=(88, 80)):
    """`count` different crops of the astronaut's face (a real photo), as (H, W, 3) uint8 arrays."""
    photo = skimage.data.astronaut()
    rng = np.random.default_rng(seed)
    faces = []
    for _ in range(count):
        top, left = rng.integers(20, 60), rng.integers(150, 200)
        crop = Image.fromarray(photo[top:top + 200, left:left + 180])
        faces.append(np.asarray(crop.resize((size[1], size[0]), Image.BICUBIC)))
    return faces


def face_folder(folder, count=6, seed=0):
    """`folder` holding `count` of those faces as PNG files (`face_00.png`, ...); returns its path."""
    os.makedirs(folder, exist_ok=True)
    for index, face in enumerate(face_images(count, seed)):
        Image.fromarray(face).save(os.path.join(folder, f'face_{index:02d}.png'))
    return str(folder)
