"""Videos through test_enhance_single_unalign.py: frames, timing, rotation, sound and size kept; bad input refused
in one line; a damaged file keeps what decoded; a stopped run leaves nothing under the final name."""
import os

import cv2
import numpy as np
import pytest

from helpers.clips import astronaut_frames, faceless_frame, read_clip, write_clip, write_joined_ts
from helpers.commands import HD_FLAGS, run_in_process, run_whole_photos
from metrics.psnr_ssim import psnr
from options import pipelines
from video import writer
from video.reader import VideoSource, fit_to
from video.writer import VideoSink


class InvertingEnhancer:
    """Stands in for the network: returns the aligned faces inverted, so pasted faces show in the output."""

    def __init__(self, fail_at_call=None):
        self.calls = 0
        self.fail_at_call = fail_at_call

    def __call__(self, faces):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise KeyboardInterrupt  # as Ctrl-C (or a kill) in the middle of the video
        return 255 - faces


@pytest.fixture
def enhancer(monkeypatch):
    inverting = InvertingEnhancer()
    monkeypatch.setattr(pipelines, 'face_enhancer', lambda opt: inverting)
    return inverting


@pytest.fixture
def video_flags(released_checkpoint):
    """The flags of a whole-photo run on the released SPARNetHD format (HOG detection at the frames' own scale: the
    astronaut's face is about 100 px across)."""
    return [*HD_FLAGS, '--pretrain_model_path', released_checkpoint('sparnethd_attn2d'), '--detector', 'hog',
            '--min_face_size', '80']


def run_video(flags, clip, results, *extra):
    return run_in_process(run_whole_photos, [*flags, '--test_img_path', str(clip), '--results_dir', str(results),
                                             *extra], 'test_enhance_single_unalign.py')


def upright(image, rotation):
    return np.rot90(image, k=rotation // 90)


def face_changed(output, source, upscale):
    """Mean difference, in the middle of the frame (the face), between the output and the input enlarged."""
    enlarged = cv2.resize(source, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    height, width = enlarged.shape[:2]
    window = (slice(height // 4, 3 * height // 4), slice(width // 4, 3 * width // 4))
    return float(np.abs(output[window].astype(float) - enlarged[window]).mean())


@pytest.mark.slow
def test_frames_times_rotation_sound_and_upscale_are_kept(tmp_path, enhancer, video_flags):
    shown = astronaut_frames(4) + [faceless_frame()] * 2 + astronaut_frames(2)
    times_ms = [0, 40, 80, 160, 200, 280, 320, 400]  # variable frame rate
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, [np.rot90(image, k=-1) for image in shown], times_ms, rotation=90)  # stored on its side
    given = read_clip(clip)

    completed = run_video(video_flags, clip, tmp_path / 'out', '--test_upscale', '2')
    assert completed.returncode == 0, completed.stderr
    made = read_clip(tmp_path / 'out' / 'clip.mp4')
    assert made['codec'] == 'h264'
    assert made['times'] == pytest.approx(given['times'], abs=1e-6)
    assert made['rotations'] == given['rotations'] == {90}
    assert made['audio'] == given['audio']  # copied packet by packet, not re-encoded
    assert [image.shape for image in made['images']] == [(640, 480, 3)] * 8
    for index, (output, source) in enumerate(zip(made['images'], given['images'])):
        output, source = upright(output, 90), upright(source, 90)
        if index in (4, 5):  # no face: the frame enlarged, untouched
            enlarged = cv2.resize(source, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            assert psnr(output, enlarged, 'rgb') > 35
        else:  # found upright and pasted back inverted
            assert face_changed(output, source, 2) > 30
    assert '8 frames, 6 with faces (6 faces)' in completed.stderr


@pytest.mark.slow
def test_start_and_end_keep_part_of_the_video(tmp_path, enhancer, video_flags):
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, astronaut_frames(8), fps=25)
    given = read_clip(clip)
    completed = run_video(video_flags, clip, tmp_path / 'out', '--start', '0.1', '--end', '0.24', '--crf', '30')
    assert completed.returncode == 0, completed.stderr
    made = read_clip(tmp_path / 'out' / 'clip.mp4')
    kept = [index for index, time in enumerate(given['times']) if 0.1 <= time < 0.24]
    assert kept == [3, 4, 5]
    assert made['times'] == pytest.approx([given['times'][i] - given['times'][3] for i in kept], abs=1e-6)
    assert made['rate'] == given['rate'] == 25
    assert 0 < len(made['audio']) < len(given['audio'])


@pytest.mark.slow
def test_a_stopped_run_leaves_nothing_under_the_final_name(tmp_path, monkeypatch, video_flags):
    stopping = InvertingEnhancer(fail_at_call=2)  # the second batch of faces
    monkeypatch.setattr(pipelines, 'face_enhancer', lambda opt: stopping)
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, astronaut_frames(6))
    out = tmp_path / 'out'
    with pytest.raises(KeyboardInterrupt):
        run_whole_photos([*video_flags, '--test_img_path', str(clip), '--results_dir', str(out)])
    assert not out.exists()  # the temporary file removed, nothing under the final name, the empty folder it made too
    # a kill -9 leaves the temporary file: the next run removes it and writes the video
    left = out / 'clip.mp4.12345-0123abcd.part'
    out.mkdir()
    left.write_bytes(b'half a video')
    monkeypatch.setattr(pipelines, 'face_enhancer', lambda opt: InvertingEnhancer())
    assert run_video(video_flags, clip, out).returncode == 0
    assert os.listdir(out) == ['clip.mp4']
    assert len(read_clip(out / 'clip.mp4')['images']) == 6


@pytest.mark.slow
def test_a_truncated_video_keeps_the_frames_that_decoded(tmp_path, enhancer, video_flags):
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, astronaut_frames(10), faststart=True)  # the index first: the frames are in the rest
    data = clip.read_bytes()
    clip.write_bytes(data[:int(len(data) * 0.6)])
    completed = run_video(video_flags, clip, tmp_path / 'out')
    assert completed.returncode == 2
    kept = len(read_clip(tmp_path / 'out' / 'clip.mp4')['images'])
    assert 0 < kept < 10
    assert f'{10 - kept} frame(s) could not be decoded' in completed.stderr
    assert f'the {kept} that did are in' in completed.stderr
    assert 'Traceback' not in completed.stderr


def not_a_video(tmp_path):
    path = tmp_path / 'notes.mp4'
    path.write_text('not a video')
    return path, []


def short_clip(tmp_path):
    path = tmp_path / 'clip.mp4'
    write_clip(path, astronaut_frames(3))
    return path, []


@pytest.mark.slow
@pytest.mark.parametrize('make, extra, message', [
    (not_a_video, [], 'notes.mp4: not a video FFmpeg can read'),
    (short_clip, ['--start', '5'], 'clip.mp4: no frame decoded from --start 5'),
    (short_clip, ['--max_pixels', '100000', '--test_upscale', '2'],
     'clip.mp4: its 320x240 frames enlarged 2x are 0.3 megapixels, more than --max_pixels 100000'),
    (short_clip, ['--start', '0.2', '--end', '0.1'], '--end 0.1 must be after --start 0.2'),
    (short_clip, ['--start', '1e9'], 'clip.mp4: no frame decoded from --start 1e+09'),  # the bound: no overflow
])
def test_bad_videos_are_refused_in_one_line(tmp_path, enhancer, video_flags, make, extra, message):
    clip, _ = make(tmp_path)
    completed = run_video(video_flags, clip, tmp_path / 'out', *extra)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert 'Traceback' not in completed.stderr
    assert not (tmp_path / 'out').exists() or os.listdir(tmp_path / 'out') == []


@pytest.mark.parametrize('flag', ['--start', '--end'])
def test_start_and_end_past_any_video_are_refused_as_parsed(tmp_path, enhancer, video_flags, flag):
    """1e300 seconds would overflow the seek's 64-bit target: refused in one line, exit 2, before any work."""
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, astronaut_frames(2))
    completed = run_video(video_flags, clip, tmp_path / 'out', flag, '1e300')
    assert completed.returncode == 2
    assert completed.stderr == (f"error: argument {flag}: must be a number from 0 to 1000000000, got '1e300' "
                                '(test_enhance_single_unalign.py -h lists the flags)\n')
    assert not (tmp_path / 'out').exists()


def test_the_input_is_never_the_output(tmp_path, enhancer, video_flags):
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, astronaut_frames(2))
    before = clip.read_bytes()
    completed = run_video(video_flags, clip, tmp_path)
    assert completed.returncode == 2
    assert f'the output of {clip} is --test_img_path {clip}: the input would be overwritten' in completed.stderr
    assert clip.read_bytes() == before


@pytest.mark.slow
def test_odd_sizes_are_padded_and_10_bit_hdr_converted_with_a_line(tmp_path, enhancer, video_flags):
    odd = tmp_path / 'videos' / 'odd.mkv'
    odd.parent.mkdir()
    write_clip(odd, [frame[:239, :319] for frame in astronaut_frames(3)], pix_fmt='yuv444p')
    write_clip(tmp_path / 'videos' / 'hdr.mp4', astronaut_frames(3), pix_fmt='yuv420p10le', color_trc=16)
    completed = run_video(video_flags, tmp_path / 'videos', tmp_path / 'out')
    assert completed.returncode == 0, completed.stderr
    assert '319x239 frames padded to 320x240' in completed.stderr
    assert 'yuv420p10le frames (10-bit) converted to 8-bit RGB' in completed.stderr
    assert 'HDR input (PQ (SMPTE 2084)) converted to 8-bit without tone mapping' in completed.stderr
    for name in ('odd.mp4', 'hdr.mp4'):
        made = read_clip(tmp_path / 'out' / name)
        assert made['codec'] == 'h264' and len(made['images']) == 3
        assert made['images'][0].shape == (240, 320, 3)
    given = read_clip(odd)['images'][0]
    assert face_changed(read_clip(tmp_path / 'out' / 'odd.mp4')['images'][0][:239, :319], given, 1) > 30


@pytest.mark.slow
def test_a_folder_of_photos_and_videos_goes_on_past_a_broken_video(tmp_path, enhancer, video_flags):
    folder = tmp_path / 'inputs'
    folder.mkdir()
    write_clip(folder / 'clip.mov', astronaut_frames(3), audio_seconds=0)
    (folder / 'broken.mp4').write_bytes(b'\x00' * 100)
    cv2.imwrite(str(folder / 'photo.png'), cv2.cvtColor(astronaut_frames(1)[0], cv2.COLOR_RGB2BGR))
    completed = run_video(video_flags, folder, tmp_path / 'out')
    assert completed.returncode == 1
    assert '2 photo(s) and video(s) enhanced (4 faces), 0 without a face, 1 failed' in completed.stdout
    assert (tmp_path / 'out' / 'photo' / 'hq_final.jpg').is_file()
    assert len(read_clip(tmp_path / 'out' / 'clip.mp4')['images']) == 3
    assert 'broken.mp4: not a video FFmpeg can read' in completed.stderr


@pytest.mark.slow
def test_a_frame_size_that_changes_mid_stream_is_scaled_or_fails_that_video_alone(tmp_path, enhancer, video_flags):
    """MPEG-TS joined end to end, 320x240 then 960x720 (whole files whose timestamps start again, and segments whose
    timestamps continue): the later frames are scaled to the first size (one line), timestamps that go back are
    moved after the first part's (one line), the sound of both parts is kept; under --max_pixels the 960x720 frames
    fail that video alone, in one line, with nothing written, and the folder goes on."""
    folder = tmp_path / 'videos'
    folder.mkdir()
    small = astronaut_frames(4)
    large = [cv2.resize(frame, (960, 720), interpolation=cv2.INTER_CUBIC) for frame in astronaut_frames(3)]
    write_joined_ts(folder / 'joined.ts', [small, large])
    write_joined_ts(folder / 'segments.ts', [small, large], continuous=True)
    write_clip(folder / 'later.mp4', astronaut_frames(2))
    given = read_clip(folder / 'joined.ts')
    assert [image.shape for image in given['images']] == [(240, 320, 3)] * 4 + [(720, 960, 3)] * 3
    assert given['times'][4] < given['times'][3]  # each file's timestamps start again
    assert read_clip(folder / 'segments.ts')['times'] == pytest.approx([1 + 0.04 * i for i in range(7)])

    completed = run_video(video_flags, folder, tmp_path / 'out')
    assert completed.returncode == 0, completed.stderr
    for name, first in (('joined.ts', 0.08), ('segments.ts', 1)):
        assert (f'{folder / name}: frames from frame 5 ({first + 0.16:.2f} s) on are 960x720: scaled to 320x240, '
                "the video's size") in completed.stderr
        made = read_clip(tmp_path / 'out' / name.replace('.ts', '.mp4'))
        assert [image.shape for image in made['images']] == [(240, 320, 3)] * 7
        assert made['times'] == pytest.approx([first + 0.04 * index for index in range(7)], abs=1e-6)
        for output, source in zip(made['images'][4:], large):  # found at the first size, pasted back inverted
            assert face_changed(output, cv2.resize(source, (320, 240), interpolation=cv2.INTER_AREA), 1) > 30
    assert f'{folder / "joined.ts"}: its timestamps go back at 0.24 s' in completed.stderr
    assert 'segments.ts: its timestamps go back' not in completed.stderr
    sound = [pts for pts, _ in read_clip(tmp_path / 'out' / 'joined.mp4')['audio']]
    assert len(sound) == len(given['audio']) and sound == sorted(sound)  # both parts', in order
    assert len(read_clip(tmp_path / 'out' / 'later.mp4')['images']) == 2

    completed = run_video(video_flags, folder, tmp_path / 'limited', '--max_pixels', '500000')
    assert completed.returncode == 1
    for name, first in (('joined.ts', 0.08), ('segments.ts', 1)):
        assert (f'{folder / name}: frame 5 ({first + 0.16:.2f} s) is 960x720, 0.7 megapixels, more than --max_pixels '
                '500000; nothing written; raise --max_pixels if this machine has the memory (skipped)'
                ) in completed.stderr
    assert 'Traceback' not in completed.stderr
    assert os.listdir(tmp_path / 'limited') == ['later.mp4']  # nothing else, no temporary file


def test_frames_of_another_shape_are_scaled_to_fit_with_black_bars():
    framed = fit_to(np.full((40, 200, 3), 200, np.uint8), 100, 60)  # halved to 100x20, centred
    assert framed.shape == (60, 100, 3)
    assert (framed[:20] == 0).all() and (framed[40:] == 0).all() and (framed[20:40] == 200).all()
    np.testing.assert_array_equal(fit_to(np.full((30, 40, 3), 7, np.uint8), 80, 60), np.full((60, 80, 3), 7))


def test_without_an_h264_encoder_the_video_is_written_in_mpeg4_with_a_line(tmp_path, monkeypatch, caplog):
    clip = tmp_path / 'clip.mp4'
    frames = astronaut_frames(3)
    write_clip(clip, frames)
    monkeypatch.setattr(writer, 'has_h264_encoder', lambda: False)
    with VideoSource(str(clip)) as source, VideoSink(str(tmp_path / 'out.mp4'), source) as sink:
        for frame in source.frames():
            sink.write(frame, frame.image)
    made = read_clip(tmp_path / 'out.mp4')
    assert made['codec'] == 'mpeg4' and len(made['images']) == 3
    assert psnr(made['images'][0], frames[0], 'rgb') > 30
    assert 'no H.264 encoder (libx264): written as MPEG-4 Part 2' in caplog.text
