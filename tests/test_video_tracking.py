"""Following faces through a video: the One-Euro filter, the face tracker, scene cuts, and the stability
measures with the pan-and-zoom clips they are measured on."""
import math

import cv2
import numpy as np
import pytest
import skimage.data

from faces.align import transform_points
from faces.detector import FaceDetector
from helpers.video import ASTRONAUT_FACE_CENTRE, face_from_landmarks, moving_face
from video.scene_cuts import SceneCutDetector
from video.stability import ALIGNED_EYE_DISTANCE, face_flicker, landmark_error, landmark_jitter, pan_zoom_clip
from video.tracking import FaceTracker, OneEuroFilter, box_iou, eye_distance


def alpha(cutoff, dt):
    """The paper's smoothing factor: 1 / (1 + tau / Te), tau = 1 / (2 pi fc)."""
    return 1 / (1 + 1 / (2 * math.pi * cutoff) / dt)


def test_one_euro_filter_follows_the_published_formulas():
    smoother = OneEuroFilter(min_cutoff=1.0, beta=0.5, d_cutoff=2.0)
    assert smoother(np.array([2.0]), 0.0) == pytest.approx(2.0)
    # t = 0.1: speed (3 - 2) / 0.1 = 10, filtered from 0 at d_cutoff; cutoff 1 + 0.5 |speed|.
    speed = alpha(2.0, 0.1) * 10
    value = 2 + alpha(1 + 0.5 * speed, 0.1) * (3 - 2)
    assert smoother(np.array([3.0]), 0.1) == pytest.approx(value)
    # t = 0.25 (dt 0.15): the speed is taken from the last filtered value.
    speed = speed + alpha(2.0, 0.15) * ((2.5 - value) / 0.15 - speed)
    value = value + alpha(1 + 0.5 * abs(speed), 0.15) * (2.5 - value)
    assert smoother(np.array([2.5]), 0.25) == pytest.approx(value)


def test_one_euro_filter_keeps_a_constant_and_its_first_value():
    landmarks = np.arange(10.0).reshape(5, 2)
    smoother = OneEuroFilter()
    first = smoother(landmarks, 0.0)
    assert np.array_equal(first, landmarks) and first is not landmarks
    for t in np.arange(1, 30) / 30:
        assert np.allclose(smoother(landmarks, t), landmarks)


def test_one_euro_filter_follows_a_step_within_a_few_frames():
    smoother = OneEuroFilter()
    smoother(np.zeros(2), 0.0)
    values = [smoother(np.full(2, 100.0), t, scale=100.0)[0] for t in np.arange(1, 16) / 30]
    assert 0 < values[0] < 100 and np.all(np.diff(values) > 0)
    assert values[4] > 90 and values[14] > 99  # within a tenth of the step after 5 frames (1/6 s)


@pytest.mark.parametrize('fps', [24.0, 60.0, 'variable'])
def test_one_euro_filter_smooths_over_time_not_frames(fps):
    """The same signal sampled at other rates (or irregularly) is filtered alike: at beta 0, a step's response
    after t seconds is 1 - exp(-2 pi min_cutoff t), whatever the frame times."""
    times = np.linspace(0, 0.5, 31) if fps == 'variable' else np.arange(0, 0.5 + 1e-9, 1 / fps)
    if fps == 'variable':
        times[1:-1] += np.random.default_rng(0).uniform(-0.006, 0.006, 29)
    smoother = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    smoother(np.zeros(1), -1e-9)
    response = [smoother(np.ones(1), t)[0] for t in times][-1]
    assert response == pytest.approx(1 - math.exp(-2 * math.pi * 0.5), abs=0.03)
    with pytest.raises(ValueError, match='increase'):
        smoother(np.ones(1), times[-1])


def test_one_euro_filter_speeds_are_in_units_of_the_scale():
    """A face 6 times larger, moving 6 times as many pixels, is smoothed alike when its size is the scale."""
    times, _, found = moving_face(30, seed=1)
    small, large = OneEuroFilter(), OneEuroFilter()
    for t, landmarks in zip(times, found):
        assert np.allclose(large(6 * landmarks, t, scale=6.0), 6 * small(landmarks, t, scale=1.0))


@pytest.mark.parametrize('eyes', [30.0, 200.0])
def test_tracker_halves_landmark_jitter_with_little_lag(eyes):
    """A face swaying at up to 0.8 eye distances per second, found with noise of 1 % of its eye distance: the same
    result at any size, jitter divided by more than 2, and the lag adds under 3 px to the mean error (in the 512 px
    aligned face, where the found landmarks are 1.4 px off)."""
    times, truth, found = moving_face(90, eyes=eyes, noise=eyes / 100, seed=2)
    tracker = FaceTracker()
    smoothed = np.array([tracker.update([face_from_landmarks(landmarks)], t)[0].landmarks
                         for t, landmarks in zip(times, found)])
    assert landmark_jitter(smoothed) < 0.5 * landmark_jitter(found)
    assert landmark_error(smoothed, truth) < landmark_error(found, truth) + 3.0


def shifted(face, dx, dy=0.0):
    return face_from_landmarks(face.landmarks + [dx, dy])


def test_tracker_keeps_each_face_on_its_own_track_when_the_list_order_changes():
    left = face_from_landmarks(moving_face(1, centre=(200.0, 300.0))[1][0])
    right = face_from_landmarks(moving_face(1, centre=(900.0, 300.0))[1][0])
    tracker, alone = FaceTracker(), FaceTracker()
    tracker.update([left, right], 0.0)
    alone.update([right], 0.0)
    out = tracker.update([shifted(right, 3.0), shifted(left, -3.0)], 1 / 30)
    assert np.allclose(out[0].landmarks, alone.update([shifted(right, 3.0)], 1 / 30)[0].landmarks)
    assert np.all(np.abs(out[0].landmarks - right.landmarks - [1.5, 0]) < 1.5)  # smoothed, not a jump to `left`
    assert np.all(np.abs(out[1].landmarks - left.landmarks + [1.5, 0]) < 1.5)


def test_tracks_restart_when_a_face_leaves_or_the_scene_cuts():
    face = face_from_landmarks(moving_face(1)[1][0])
    tracker = FaceTracker()
    tracker.update([face], 0.0)
    assert not np.allclose(tracker.update([shifted(face, 4.0)], 1 / 30)[0].landmarks, shifted(face, 4.0).landmarks)
    assert tracker.update([], 2 / 30) == []
    back = shifted(face, 8.0)
    assert np.array_equal(tracker.update([back], 3 / 30)[0].landmarks, back.landmarks)  # a new track: unfiltered
    assert np.array_equal(tracker.update([face], 4 / 30, scene_cut=True)[0].landmarks, face.landmarks)
    far = shifted(face, 500.0)  # no overlap with the last box: another face
    assert np.array_equal(tracker.update([far], 5 / 30)[0].landmarks, far.landmarks)


def test_tracker_leaves_its_inputs_alone_and_returns_them_unsmoothed_when_asked():
    times, _, found = moving_face(5, seed=3)
    faces = [face_from_landmarks(landmarks) for landmarks in found]
    copies = [landmarks.copy() for landmarks in found]
    smoothing, plain = FaceTracker(), FaceTracker(smooth=False)
    for t, face, landmarks in zip(times, faces, copies):
        out = smoothing.update([face], t)[0]
        assert out is not face and out.box == face.box and out.score == face.score
        assert np.array_equal(face.landmarks, landmarks)
        assert plain.update([face], t)[0].landmarks is face.landmarks
    assert not np.array_equal(out.landmarks, faces[-1].landmarks)


def test_box_iou_and_eye_distance():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]))
    assert np.allclose(iou, [[1 / 3, 0, 1]])
    assert eye_distance(np.array([[3, 0], [1, 0], [-1, 0], [-3, 0], [0, 5]])) == pytest.approx(4)


def clip_cuts(frames):
    detector = SceneCutDetector()
    return [detector(frame) for frame in frames]


def test_scene_cuts_fire_when_the_content_changes():
    astronaut, coffee, chelsea = skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()
    assert clip_cuts([astronaut, coffee, chelsea, chelsea, astronaut]) == [False, True, True, False, True]
    gray = [np.repeat(image[..., None], 3, axis=2) for image in (skimage.data.camera(), skimage.data.moon())]
    assert clip_cuts(gray) == [False, True]


def test_scene_cuts_do_not_fire_along_a_noisy_pan_and_zoom():
    frames, _ = pan_zoom_clip(skimage.data.astronaut(), 12, (320, 240), centre=ASTRONAUT_FACE_CENTRE)
    assert not any(clip_cuts(frames))
    frames, _ = pan_zoom_clip(skimage.data.coffee(), 12, (320, 240), seed=1)
    assert not any(clip_cuts(frames))


def test_pan_zoom_clip_frames_show_the_photo_where_the_matrices_say():
    photo = skimage.data.astronaut()
    frames, matrices = pan_zoom_clip(photo, 8, (320, 240), seed=4, centre=ASTRONAUT_FACE_CENTRE, noise=2.0)
    assert len(frames) == 8 and matrices.shape == (8, 2, 3)
    assert all(frame.shape == (240, 320, 3) and frame.dtype == np.uint8 for frame in frames)
    again, _ = pan_zoom_clip(photo, 8, (320, 240), seed=4, centre=ASTRONAUT_FACE_CENTRE, noise=2.0)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    points = np.random.default_rng(0).uniform([0, 0], [319, 239], (300, 2))  # frame pixels (x, y)
    for frame, matrix in zip(frames, matrices):
        where = np.round(transform_points(cv2.invertAffineTransform(matrix), points)).astype(int)
        assert (where >= 0).all() and (where < [512, 512]).all()  # the view stays inside the photo
        seen = frame[np.round(points[:, 1]).astype(int), np.round(points[:, 0]).astype(int)].astype(float)
        assert np.median(np.abs(seen - photo[where[:, 1], where[:, 0]])) < 6
    scales = matrices[:, 0, 0]
    assert 1.1 < scales[-1] / scales[0] < 1.25 and np.all(np.diff(scales) >= 0)
    motion = np.diff(matrices[:, :, 2], axis=0)
    assert np.abs(motion).max() > 1 and np.abs(np.diff(motion, axis=0)).max() < 0.5 * np.abs(motion).max()


def test_landmark_jitter_and_error_are_in_pixels_of_the_aligned_face():
    face = np.array([[3, 0], [1, 0], [-1, 0], [-3, 0], [0, 5]], dtype=float)  # eyes 4 px apart
    steady = face + np.arange(5)[:, None, None] * [2.0, 1.0]  # constant velocity
    assert landmark_jitter(steady) == pytest.approx(0)
    shaken = steady.copy()
    shaken[2] += [0.4, 0.0]  # one frame off by a tenth of the eye distance: second differences -0.8 at t = 2, 0.4
    assert landmark_jitter(shaken) == pytest.approx((0.4 + 0.8 + 0.4) / 3 / 4 * ALIGNED_EYE_DISTANCE)
    assert landmark_error(shaken, steady) == pytest.approx(0.4 / 5 / 4 * ALIGNED_EYE_DISTANCE)
    assert ALIGNED_EYE_DISTANCE == pytest.approx(124.4, abs=0.1)
    with pytest.raises(ValueError):
        landmark_jitter(steady[:2])


def test_face_flicker_counts_only_the_change_beyond_the_input():
    inputs = [np.full((20, 30, 3), level, np.uint8) for level in (100, 104, 100, 104)]  # the input changes by 4
    outputs = [frame.copy() for frame in inputs]
    assert face_flicker(outputs, inputs, (5, 5, 15, 15)) == pytest.approx(0)
    for frame, level in zip(outputs, (100, 110, 100, 110)):
        frame[5:15, 5:15] = level  # changes by 10 in the face, as the input elsewhere
    assert face_flicker(outputs, inputs, (5, 5, 15, 15)) == pytest.approx(6)
    assert face_flicker(outputs, inputs, (5, 5, 25, 15)) == pytest.approx(3)  # half the region flickers
    assert face_flicker(outputs, inputs, [(5, 5, 15, 15), (0, 0, 5, 5), (0, 0, 5, 5), (5, 5, 15, 15)]) == \
        pytest.approx(6 / 3)  # per-frame boxes: only the last pair is in the face
    larger = [np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1) for frame in outputs]  # a 2x output
    assert face_flicker(larger, inputs, (5, 5, 15, 15)) == pytest.approx(6)


@pytest.mark.slow
def test_smoothing_halves_the_jitter_of_real_detections():
    """dlib's HOG and landmarks on a noisy, JPEG-compressed pan and zoom over the astronaut."""
    photo = skimage.data.astronaut()
    frames, _ = pan_zoom_clip(photo, 12, (320, 240), seed=1, centre=ASTRONAUT_FACE_CENTRE, pan=0.2)
    found, smoothed = [], []
    tracker = FaceTracker()
    with FaceDetector('hog') as detector:
        for index, frame in enumerate(frames):
            faces = detector(frame)
            assert len(faces) == 1
            found.append(faces[0].landmarks)
            smoothed.append(tracker.update(faces, index / 30)[0].landmarks)
    assert landmark_jitter(np.array(smoothed)) < 0.5 * landmark_jitter(np.array(found))
