"""Identity similarity: dlib's face descriptors (ResNet, 128-d) of a result and its ground truth.

The face is found in the ground truth only, and that box is used for the result too (the two
are pixel-aligned): a result too damaged for the detector is then still compared, with a low
score, instead of silently leaving the mean. Landmarks, hence the aligned face chip, come from
each image itself. The models ship with the `face_recognition_models` package (offline).
"""
import dlib
import numpy as np

from faces.detector import DETECTORS
from faces.dlib_models import CNN_DETECTOR_FILE, DESCRIPTOR_FILE, LANDMARKS_FILE, dlib_model_path
from faces.search_plan import DETECTION_WINDOW


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


class FaceIdentity:
    """Face descriptors and result-vs-ground-truth identity scores with dlib."""

    def __init__(self, detector: str = 'hog') -> None:
        if detector not in DETECTORS:
            raise ValueError(f'detector must be one of {DETECTORS}, got {detector!r}')
        if detector == 'cnn':
            cnn = dlib.cnn_face_detection_model_v1(dlib_model_path(CNN_DETECTOR_FILE))
            self._detect = lambda image, upsample: [found.rect for found in cnn(image, upsample)]
        else:
            self._detect = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(dlib_model_path(LANDMARKS_FILE))
        self._descriptor = dlib.face_recognition_model_v1(dlib_model_path(DESCRIPTOR_FILE))

    def find_face(self, image: np.ndarray) -> dlib.rectangle | None:
        """The largest face box in an HxWx3 uint8 RGB image, or None. The image is searched at
        its own size, then upsampled 2x if nothing was found: dlib misses faces under ~80 px."""
        for upsample in (0, 1):
            if min(image.shape[:2]) * 2 ** upsample < DETECTION_WINDOW:
                continue  # no face fits, and dlib's CNN detector crashes the process on such images
            boxes = list(self._detect(image, upsample))
            if boxes:
                return max(boxes, key=lambda box: box.area())
        return None

    def descriptor(self, image: np.ndarray, box: dlib.rectangle) -> np.ndarray:
        """dlib's 128-d descriptor of the face in `box`, aligned by its own 5 landmarks."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        return np.asarray(self._descriptor.compute_face_descriptor(image, self._landmarks(image, box)))

    def compare(self, result: np.ndarray, gt: np.ndarray) -> tuple[float, float] | None:
        """(cosine similarity, Euclidean distance) of the two faces' descriptors, or None when
        no face is found in the ground truth. dlib's own rule: distance < 0.6 is the same person."""
        gt = np.ascontiguousarray(gt, dtype=np.uint8)
        box = self.find_face(gt)
        if box is None:
            return None
        gt_descriptor, result_descriptor = self.descriptor(gt, box), self.descriptor(result, box)
        return (cosine_similarity(result_descriptor, gt_descriptor),
                float(np.linalg.norm(result_descriptor - gt_descriptor)))
