"""The published code's steps as its users ran them, re-run here so that benchmarks time against them.

Kept apart from the project's own pipeline on purpose: batch 1, one image at a time, the plain
module, dlib's own CNN detector on the photo upsampled once, scikit-image warps, as the original
test.py and test_enhance_single_unalign.py did; training steps in fp32 on the plain modules, as
the original train.py ran them.
"""
import os
from collections.abc import Iterable

import av
import cv2
import dlib
import numpy as np
import torch
from PIL import Image
from skimage import transform
from torch import nn
from torch.nn import functional as F

from faces.align import ffhq_template
from faces.dlib_models import CNN_DETECTOR_FILE, LANDMARKS_FILE, dlib_model_path
from losses.gan import GANLoss, feature_matching_loss
from models.ema import ema_update
from video.writer import write_frames


def published_face_loop(net: torch.nn.Module, lr_dir: str, names: Iterable[str], out_dir: str,
                        load_size: int = 128) -> None:
    """The published test.py loop: one image at a time through the plain module, saved with PIL."""
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        img = Image.open(os.path.join(lr_dir, name)).convert('RGB').resize((load_size, load_size), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)
        with torch.no_grad():
            y = net(((x - 0.5) / 0.5)[None])
        array = ((y[0].numpy().transpose(1, 2, 0) + 1.0) / 2.0 * 255.0).clip(0, 255).astype(np.uint8)
        Image.fromarray(array).save(os.path.join(out_dir, name))


def published_boxes(photo: np.ndarray, cnn: dlib.cnn_face_detection_model_v1) -> list[tuple[int, int, int, int]]:
    """Face boxes (left, top, right, bottom) of dlib's own CNN detector `cnn` as the published script ran it:
    the whole photo upsampled once."""
    return [(found.rect.left(), found.rect.top(), found.rect.right(), found.rect.bottom()) for found in cnn(photo, 1)]


def published_photo_loop(net: torch.nn.Module, photos: Iterable[str], out_dir: str) -> int:
    """The published whole-photo script's steps, each photo in turn, in one process."""
    detector = dlib.cnn_face_detection_model_v1(dlib_model_path(CNN_DETECTOR_FILE))
    predictor = dlib.shape_predictor(dlib_model_path(LANDMARKS_FILE))
    template = ffhq_template(512)
    faces_done = 0
    for photo_path in photos:
        img = np.asarray(Image.open(photo_path).convert('RGB'))
        aligned, tforms = [], []
        for found in detector(img, 1):
            if found.rect.width() > 999 or found.rect.height() > 999:
                break
            shape = predictor(img, found.rect)
            points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
            tform = transform.SimilarityTransform.from_estimate(points, template)
            aligned.append(transform.warp(img, tform.inverse, output_shape=(512, 512), order=3) * 255)
            tforms.append(tform)
        hq_faces = []
        for face in aligned:
            with torch.no_grad():
                y = net((torch.tensor(face.transpose(2, 0, 1)) / 255.0 * 2 - 1)[None].float())
            hq_faces.append(((y[0].numpy().transpose(1, 2, 0) + 1) / 2 * 255).clip(0, 255).astype(np.uint8))
        final = img.astype(np.float64)
        for hq, tform in zip(hq_faces, tforms):
            back = transform.warp(hq / 255.0, tform, output_shape=img.shape[:2], order=3) * 255
            mask = cv2.blur((back == 0).astype(np.float32), (5, 5)) > 0
            final = final * mask + (1 - mask) * back
        photo_dir = os.path.join(out_dir, os.path.splitext(os.path.basename(photo_path))[0])
        for sub, faces in (('LQ_faces', aligned), ('HQ', hq_faces)):
            os.makedirs(os.path.join(photo_dir, sub), exist_ok=True)
            for index, face in enumerate(faces):
                Image.fromarray(face.astype(np.uint8)).save(os.path.join(photo_dir, sub, f'{index:03d}.jpg'))
        Image.fromarray(final.astype(np.uint8)).save(os.path.join(photo_dir, 'hq_final.jpg'))
        faces_done += len(hq_faces)
    return faces_done


def published_video_loop(net: torch.nn.Module, video_path: str, out_path: str, work_dir: str) -> int:
    """What a user of the published code runs for a video, which it does not take: the frames extracted as JPEG
    (quality 95), the whole-photo steps on each (`published_photo_loop`), the results encoded back (H.264, crf
    18, the clip's frame rate; no sound). Returns the number of frames."""
    frames_dir = os.path.join(work_dir, 'frames')
    os.makedirs(frames_dir, exist_ok=True)
    with av.open(video_path) as container:
        rate = container.streams.video[0].average_rate
        paths = []
        for index, frame in enumerate(container.decode(video=0)):
            paths.append(os.path.join(frames_dir, f'{index:06d}.jpg'))
            frame.to_image().save(paths[-1], quality=95)
    results_dir = os.path.join(work_dir, 'results')
    published_photo_loop(net, paths, results_dir)
    finals = (np.asarray(Image.open(os.path.join(results_dir, os.path.splitext(os.path.basename(path))[0],
                                                 'hq_final.jpg')))
              for path in paths)
    return write_frames(out_path, finals, rate)


def published_sparnet_step(net: nn.Module, optimizer: torch.optim.Optimizer, lr: torch.Tensor,
                           hr: torch.Tensor) -> float:
    """The published SPARNet training step: the plain module in fp32, L1, Adam. Returns the loss."""
    loss = F.l1_loss(net(lr), hr)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def published_sparnethd_step(nets: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                             vgg: nn.Module, lr: torch.Tensor, hr: torch.Tensor, ema_decay: float = 0.999) -> float:
    """The published SPARNetHD GAN step in fp32: G's forward, H averaged towards G and run forward in train mode,
    three D forwards (real, fake for G's losses, detached fake for D's), G's step (Pix x100, VGG, feature matching
    x10, hinge), D's step. Returns G's total loss."""
    gan = GANLoss('hinge')
    sr = nets['G'](lr)
    ema_update(nets['H'], nets['G'], ema_decay)
    with torch.no_grad():
        nets['H'](lr)
    real, fake = nets['D'](hr), nets['D'](sr)
    loss_g = (F.l1_loss(sr, hr) * 100 + vgg(sr, hr) + feature_matching_loss(fake, real) * 10
              + sum(gan(score, True, False) for score, _ in fake) / len(fake))
    optimizers['G'].zero_grad()
    loss_g.backward()
    optimizers['G'].step()
    fake = nets['D'](sr.detach())
    loss_d = 0.5 * sum(gan(r, True) + gan(f, False) for (r, _), (f, _) in zip(real, fake)) / len(fake)
    optimizers['D'].zero_grad()
    loss_d.backward()
    optimizers['D'].step()
    return loss_g.item()
