"""Enhance every face of a whole photo or video (or of each photo and video in a folder) with SPARNetHD.

    python test_enhance_single_unalign.py --test_img_path photo.jpg --results_dir results/photo
    python test_enhance_single_unalign.py --test_img_path clip.mp4 --results_dir results/videos

Without --pretrain_model_path (and no checkpoint of --name), the released `sparnethd_attn2d` is
used, downloaded into the weights cache on first use. Faces are found with dlib, aligned to the
FFHQ template, enhanced and pasted back (`inference/whole_photos.py`); per photo, --results_dir
holds `LQ_faces/NNN.<ext>`, `HQ/NNN.<ext>` and `hq_final.<ext>` (`inference/photo_results.py`); per video,
`<results_dir>/<name>.mp4` with the input's frames, timing, rotation and sound (`video/enhance.py`).
"""
from inference.whole_photos import enhance_whole_photos
from options.test_options import TestOptions
from utils.cli import run
from weights.released import DEFAULT_PHOTO_MODEL


def main(argv=None):
    return enhance_whole_photos(TestOptions().parse(argv, default_weights=DEFAULT_PHOTO_MODEL))


if __name__ == '__main__':
    run(main)
