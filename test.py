"""Super-resolve every image below --dataroot with a SPARNet / SPARNetHD checkpoint.

    python test.py --dataroot test_dirs/Helen_test_DIC/LR --save_as_dir results_helen/SPARNet \
        --pretrain_model_path ./pretrain_models/SPARNet-V16-S4-epoch20.pth

Outputs keep their relative names under --save_as_dir; unreadable inputs are reported and
skipped, and the run ends with a summary (exit 1 when any image failed). The run itself is
`inference/face_folder.py`.
"""
from inference.face_folder import test_folder
from options.test_options import TestOptions
from utils.cli import run


def main(argv=None):
    return test_folder(TestOptions().parse(argv))


if __name__ == '__main__':
    run(main)
