"""The Python API: faces, photos and videos restored from inside any program (docs/python-api.md).

    from api import FaceEnhancer, PhotoRestorer
    restorer = PhotoRestorer()                      # SPARNetHD, downloaded once into the weights cache
    result = restorer.restore('photo.jpg')          # result.final: the photo; result.faces, .hq_faces, .matrices

The command-line scripts, the web page and torch.hub build these same objects.
"""
from api.face_enhancer import FaceEnhancer
from api.photo_restorer import PhotoRestorer
from faces.restorer import NoFaceFound, RestoredPhoto
from utils.cli import UserError
from video.enhance import VideoFailed
from video.pipeline import VideoTotals

__all__ = ['FaceEnhancer', 'NoFaceFound', 'PhotoRestorer', 'RestoredPhoto', 'UserError', 'VideoFailed',
           'VideoTotals']
