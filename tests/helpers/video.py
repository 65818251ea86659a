"""Faces for the video tests: the astronaut's landmarks, and synthetic faces moving smoothly with per-frame noise."""
import numpy as np

from faces.detector import Face

# Where the astronaut's face is in scikit-image's photo (dlib's HOG and landmarks found it there): a camera
# aimed there keeps the face in view.
ASTRONAUT_FACE_CENTRE = (225.0, 110.0)
# dlib's five landmarks of a face with eyes 100 px apart, centred on (0, 0).
UNIT_LANDMARKS = np.array([[60.0, -20.0], [40.0, -18.0], [-40.0, -18.0], [-60.0, -20.0], [0.0, 25.0]])


def face_from_landmarks(landmarks, score=1.0):
    """A `Face` around five landmarks: its box twice their extent, centred on them."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    centre, half = landmarks.mean(axis=0), 1.2 * np.ptp(landmarks, axis=0).max()
    return Face(box=(*(centre - half), *(centre + half)), score=score, landmarks=landmarks)


def moving_face(n_frames, fps=30.0, eyes=100.0, noise=1.0, seed=0, centre=(640.0, 360.0)):
    """(times (T,), true landmarks (T, 5, 2), found landmarks (T, 5, 2)) of a face with eyes `eyes` px apart whose
    centre sways smoothly (a quarter of its size each way, 0.5 Hz) while it grows by a fifth, found with Gaussian
    noise of `noise` px on each coordinate."""
    rng = np.random.default_rng(seed)
    times = np.arange(n_frames) / fps
    path = np.asarray(centre) + 0.25 * eyes * np.stack([np.sin(np.pi * times), np.cos(np.pi * times)], axis=1)
    sizes = eyes / 100.0 * (1 + 0.2 * np.linspace(0.0, 1.0, n_frames))
    truth = path[:, None, :] + sizes[:, None, None] * UNIT_LANDMARKS
    return times, truth, truth + rng.normal(0.0, noise, truth.shape)
