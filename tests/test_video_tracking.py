"""Following faces through a video: the face tracker, the landmark smoothing along tracks, scene cuts, and the
stability measures with the pan-and-zoom clips they are measured on."""
import cv2
import numpy as np
import pytest
import skimage.data

from faces.align import transform_points
from faces.detector import FaceDetector
from helpers.video import ASTRONAUT_FACE_CENTRE, face_from_landmarks, moving_face
from video.scene_cuts import SceneCutDetector
from video.smoothing import SIGMA_SECONDS, Tracked, local_fit, smooth_tracks
from video.stability import (
    ALIGNED_EYE_DISTANCE,
    eye_distance,
    face_flicker,
    landmark_error,
    landmark_jitter,
    pan_zoom_clip,
    photo_views,
)
from video.tracking import FaceTracker, box_iou


def one_track(times, landmarks):
    """Entries of one face followed through the frames (track 0), the frame number as the item."""
    return [Tracked(index, t, [face_from_landmarks(points)], [0]) for index, (t, points) in
            enumerate(zip(times, landmarks))]


def smoothed_landmarks(entries):
    return np.array([entry.faces[0].landmarks for entry in smooth_tracks(entries)])


def test_local_fit_is_the_weighted_least_squares_quadratic():
    times, values = np.array([-0.1, 0.0, 0.05, 0.2]), np.array([1.0, 3.0, 2.0, 5.0])
    weights = np.exp(-0.5 * (times / 0.1) ** 2)  # Gaussian weights of width 0.1 around t = 0
    design = np.stack([np.ones(4), times, times ** 2], axis=1)
    expected = np.linalg.solve(design.T @ (weights[:, None] * design), design.T @ (weights * values))[0]
    assert local_fit(times, values[:, None], 0.0, sigma=0.1)[0] == pytest.approx(expected)
    assert local_fit(times[:2], values[:2, None], 0.0, sigma=0.1)[0] == pytest.approx(3.0)  # a line through both
    assert local_fit(times[:1], values[:1, None], 0.0, sigma=0.1)[0] == pytest.approx(1.0)  # one point: itself


@pytest.mark.parametrize('fps', [24.0, 60.0, 'variable'])
def test_smoothing_keeps_motion_up_to_constant_acceleration_exactly(fps):
    """No lag: a face gliding and accelerating comes out where it is, ends of the track included, at any rate."""
    times = np.linspace(0, 1, 31) if fps == 'variable' else np.arange(0, 1, 1 / fps)
    if fps == 'variable':
        times[1:-1] += np.random.default_rng(0).uniform(-0.01, 0.01, 29)
    start = moving_face(1)[1][0]
    truth = start + 40 * times[:, None, None] * [1.0, 0.5] + 30 * times[:, None, None] ** 2 * [0.0, 1.0]
    assert np.allclose(smoothed_landmarks(one_track(times, truth)), truth, atol=1e-6)


@pytest.mark.parametrize('eyes', [30.0, 200.0])
def test_smoothing_divides_jitter_by_ten_without_adding_error(eyes):
    """A face swaying at up to 0.8 eye distances per second, found with noise of 1 % of its eye distance: the same
    at any size, jitter divided by more than 10, and closer to the truth than found."""
    times, truth, found = moving_face(90, eyes=eyes, noise=eyes / 100, seed=2)
    smoothed = smoothed_landmarks(one_track(times, found))
    assert landmark_jitter(smoothed) < 0.1 * landmark_jitter(found)
    assert landmark_error(smoothed, truth) < landmark_error(found, truth)


def test_smoothing_looks_ahead_a_bounded_number_of_frames():
    times, _, found = moving_face(60, fps=240.0, seed=1)  # at 240 fps the window is capped in frames
    read = []

    def entries():
        for entry in one_track(times, found):
            read.append(entry.item)
            yield entry
    for entry in smooth_tracks(entries(), max_lookahead=16):
        assert read[-1] - entry.item <= 16
    times = np.arange(60) / 240 * 8  # at 30 fps: handed out once the first frame beyond two sigmas is read
    read.clear()
    for entry in smooth_tracks(entries()):
        assert times[read[-1]] - times[entry.item] < 2 * SIGMA_SECONDS + 1.5 / 30


def test_each_track_is_smoothed_on_its_own():
    """Two faces, one still and one moving, listed in either order; a third appearing for two frames only."""
    times, _, moving = moving_face(20, noise=0.0, centre=(900.0, 300.0))
    still = np.repeat(moving_face(1, centre=(200.0, 300.0))[1], 20, axis=0)
    entries = []
    for index, t in enumerate(times):
        faces = [face_from_landmarks(still[index]), face_from_landmarks(moving[index])]
        tracks = [0, 1]
        if index % 2:
            faces, tracks = faces[::-1], tracks[::-1]
        if index in (7, 8):
            faces.append(face_from_landmarks(still[index] + 400))
            tracks.append(2)
        entries.append(Tracked(index, t, faces, tracks))
    for entry in smooth_tracks(entries):
        by_track = dict(zip(entry.tracks, entry.faces))
        assert np.allclose(by_track[0].landmarks, still[entry.item])
        assert np.allclose(by_track[1].landmarks, moving[entry.item], atol=0.2)  # a smooth sway, not mixed
        if 2 in by_track:
            assert np.allclose(by_track[2].landmarks, still[entry.item] + 400)


def test_smoothing_leaves_its_inputs_alone():
    times, _, found = moving_face(5, seed=3)
    entries = one_track(times, found)
    out = list(smooth_tracks(entries))
    for before, after, landmarks in zip(entries, out, found):
        assert after.faces[0] is not before.faces[0] and after.faces[0].box == before.faces[0].box
        assert np.array_equal(before.faces[0].landmarks, landmarks)


def shifted(face, dx, dy=0.0):
    return face_from_landmarks(face.landmarks + [dx, dy])


def test_tracker_follows_each_face_when_the_list_order_changes():
    left = face_from_landmarks(moving_face(1, centre=(200.0, 300.0))[1][0])
    right = face_from_landmarks(moving_face(1, centre=(900.0, 300.0))[1][0])
    tracker = FaceTracker()
    first = tracker.update([left, right])
    assert tracker.update([shifted(right, 3.0), shifted(left, -3.0)]) == first[::-1]


def test_tracks_restart_when_a_face_leaves_or_the_scene_cuts():
    face = face_from_landmarks(moving_face(1)[1][0])
    tracker = FaceTracker()
    [first] = tracker.update([face])
    assert tracker.update([shifted(face, 4.0)]) == [first]
    assert tracker.update([]) == []
    [back] = tracker.update([shifted(face, 8.0)])
    assert back != first  # a new track
    [cut] = tracker.update([shifted(face, 8.0)], scene_cut=True)
    assert cut not in (first, back)
    assert tracker.update([shifted(face, 500.0)]) != [cut]  # no overlap with the last box: another face


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


@pytest.mark.parametrize('upscale', [1, 2])
def test_photo_views_take_the_camera_motion_out(upscale):
    photo = skimage.data.astronaut()
    frames, matrices = pan_zoom_clip(photo, 6, (320, 240), seed=2, centre=ASTRONAUT_FACE_CENTRE, noise=0.0,
                                     jpeg_quality=100)
    frames = [cv2.resize(frame, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC) for frame in frames]
    box = (170, 50, 290, 180)  # the face, in photo pixels
    views = photo_views(frames, matrices, box, upscale)
    assert all(view.shape == (130, 120, 3) for view in views)
    crop = photo[50:180, 170:290].astype(float)
    assert all(np.abs(view - crop).mean() < 6 for view in views)  # each sees the photo's face, steady
    moved = photo_views(frames, matrices[::-1], box, upscale)  # the wrong camera path: the face moves
    assert np.abs(moved[0] - crop).mean() > 2 * np.abs(views[0] - crop).mean()


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
def test_smoothing_divides_the_jitter_of_real_detections_by_five():
    """dlib's HOG and landmarks on a noisy, JPEG-compressed pan and zoom over the astronaut."""
    photo = skimage.data.astronaut()
    frames, _ = pan_zoom_clip(photo, 12, (320, 240), seed=1, centre=ASTRONAUT_FACE_CENTRE, pan=0.2)
    found = []
    with FaceDetector('hog') as detector:
        for frame in frames:
            faces = detector(frame)
            assert len(faces) == 1
            found.append(faces[0].landmarks)
    smoothed = smoothed_landmarks(one_track(np.arange(12) / 30, found))
    assert landmark_jitter(smoothed) < 0.2 * landmark_jitter(np.array(found))
