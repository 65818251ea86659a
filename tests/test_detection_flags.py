"""The face-detection flags of the whole-photo and dataset scripts, the old ones included."""
import argparse
import logging

import pytest

import faces.detector
from faces.detector import default_tile_size, detector_from_flags
from options.detection_flags import add_detection_flags
from options.test_options import TestOptions
from utils.cli import ArgumentParser


def parse(*flags):
    return add_detection_flags(argparse.ArgumentParser()).parse_args(['--detector', 'hog', *flags])


def test_defaults_find_faces_from_40_px_with_automatic_workers():
    detector = detector_from_flags(parse())
    assert (detector.kind, detector.min_face_size, detector.min_score, detector.tile_size) == ('hog', 40, 0.3, 4096)
    assert detector.workers >= 1
    assert detector.plan(1066, 2732)[0].scale == 2  # the published upsampling, whatever the photo size


@pytest.mark.parametrize('memory, side', [(24 * 2 ** 30, 5675),  # sqrt(24 GiB / 4 / 200 bytes)
                                          (2 * 2 ** 30, 2048), (None, 2048)])
def test_the_cnn_searches_images_as_large_as_a_quarter_of_the_memory_holds(monkeypatch, memory, side):
    monkeypatch.setattr(faces.detector, 'device_memory', lambda device='cpu': memory)
    assert default_tile_size('cnn') == side
    assert default_tile_size('hog') == 4096
    flags = add_detection_flags(argparse.ArgumentParser()).parse_args([])
    with detector_from_flags(flags) as detector:
        assert detector.tile_size == side
        # at 24 GiB, 2800x2000 (5.6 MP, ~23 GB for the published search) is searched whole, as it searches it
        whole = [len(search_pass.tiles) for search_pass in detector.plan(2000, 2800)] == [1]
        assert whole == (side == 5675)


def test_new_flags_reach_the_detector():
    detector = detector_from_flags(parse('--min_face_size', '160', '--detect_tile_size', '1024', '--detect_workers',
                                         '3', '--detect_min_score', '0.5'))
    assert (detector.min_face_size, detector.tile_size, detector.workers, detector.min_score) == (160, 1024, 3, 0.5)
    assert detector.plan(2000, 3000)[0].scale == 0.5


def test_deprecated_detect_max_size_caps_the_first_search_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        detector = detector_from_flags(parse('--detect_max_size', '1600'))
    assert '--detect_max_size is deprecated (use --min_face_size)' in caplog.text
    assert detector.plan(1200, 3200)[0].scale == 0.5  # shrunk to 1600 px, as before
    assert detector.plan(500, 700)[0].scale == 2  # upsampled 2x, as before


@pytest.mark.parametrize('flags, message', [
    (('--min_face_size', '0'), "argument --min_face_size: must be an integer 1 or more, got '0'"),
    (('--detect_tile_size', '300'), "argument --detect_tile_size: must be an integer 512 or more, got '300'"),
    (('--detect_workers', '-1'), "argument --detect_workers: must be an integer 0 or more, got '-1'"),
    (('--detect_max_size', '0'), "argument --detect_max_size: must be an integer 1 or more, got '0'"),
    (('--detect_min_score', 'nan'), "argument --detect_min_score: must be a number, got 'nan'"),
])
def test_bad_values_are_one_clear_line(flags, message, capsys):
    with pytest.raises(SystemExit) as stop:
        add_detection_flags(ArgumentParser()).parse_args(['--detector', 'hog', *flags])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[0]


def test_the_whole_photo_options_take_old_and_new_flags():
    opt = TestOptions().parse(['--model', 'sparnethd', '--detector', "'HOG'", '--detect_max_size', '1600',
                               '--detect_min_score', '0.5', '--min_face_size', '30'])
    assert (opt.detector, opt.detect_max_size, opt.detect_min_score, opt.min_face_size) == ('hog', 1600, 0.5, 30)
