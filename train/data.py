"""Synthetic tracking pairs from redistributable images (see train/README.md for the licences).

Each sample renders three frames of one scene: a background (natural photo, CC0 texture or
procedural noise, shifted between frames like a panning camera), the target (a CC0 sprite with
alpha, or a patch of a natural photo) and distractors (other sprites, a recoloured copy of the
target), with scale changes, illumination change, blur, noise and partial occluders. Crops are
taken with the runtime's own crop rule and normalisation:
template = frame 1, online template = frame 3, search = frame 2 around a jittered previous box.
A quarter of the samples are negatives (target absent or fully hidden in the search frame).
"""
from __future__ import annotations

import glob
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mixformerv2_cpu.geometry import sample_target
from mixformerv2_cpu.preprocess import normalize_patch

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# scikit-image images whose docstrings state CC0 / public domain / no copyright restrictions
SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "cat", "coffee", "grass", "gravel", "horse", "hubble_deep_field",
                  "immunohistochemistry", "retina", "rocket", "text", "coins", "clock", "moon", "page")
FRAME_W, FRAME_H = 320, 240


def _bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = img.astype(np.float32)
        img = (255 * (img - img.min()) / max(1e-6, float(np.ptp(img)))).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1])


def arcade_sprite_dir(cache: Path) -> Path:
    """Extract arcade 3.3.3's CC0 (Kenney) images from its wheel (``pip download arcade==3.3.3 --no-deps``)."""
    out = cache / "arcade_images"
    if not out.is_dir():
        wheels = sorted(glob.glob(str(cache / "arcade-*.whl")))
        if not wheels:
            raise FileNotFoundError(f"no arcade wheel in {cache}: run pip download arcade==3.3.3 --no-deps -d {cache}")
        with zipfile.ZipFile(wheels[-1]) as z:
            for name in z.namelist():
                if name.startswith("arcade/resources/assets/images/") and name.endswith((".png", ".txt")):
                    z.extract(name, out)
    return out / "arcade/resources/assets/images"


@dataclass
class Assets:
    backgrounds: list[np.ndarray]
    sprites: list[np.ndarray]  # BGRA

    @classmethod
    def load(cls, cache: Path) -> "Assets":
        import skimage.data
        from sklearn.datasets import load_sample_images

        bgs = [_bgr(getattr(skimage.data, n)()) for n in SKIMAGE_IMAGES]
        bgs += [_bgr(im) for im in load_sample_images().images]  # china, flower: CC-BY 2.0
        root = arcade_sprite_dir(cache)
        sprites = []
        for p in sorted(root.rglob("*.png")):
            if "background" in str(p).lower() or "parallax" in str(p).lower():
                continue
            im = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if im is None or im.ndim != 3 or im.shape[2] != 4 or min(im.shape[:2]) < 16:
                continue
            ys, xs = np.nonzero(im[..., 3] > 32)
            if len(ys) < 100:
                continue
            im = im[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            if max(im.shape[:2]) / min(im.shape[:2]) > 4:
                continue
            sprites.append(im)
        return cls(bgs, sprites)


def _background(a: Assets, rng: np.random.Generator, pan: np.ndarray, zoom: float) -> np.ndarray:
    """A FRAME_H×FRAME_W view of a background, shifted by ``pan`` and zoomed by ``zoom``."""
    if rng.random() < 0.15:
        noise = rng.random((FRAME_H // 8 + 2, FRAME_W // 8 + 2, 3)) * 255
        return cv2.resize(noise.astype(np.uint8), (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC)
    bg = a.backgrounds[rng.integers(len(a.backgrounds))]
    h, w = bg.shape[:2]
    scale = max(FRAME_W / w, FRAME_H / h) * zoom * 1.3
    m = np.array([[scale, 0, -pan[0]], [0, scale, -pan[1]]], np.float32)
    return cv2.warpAffine(bg, m, (FRAME_W, FRAME_H), borderMode=cv2.BORDER_REFLECT)


def _object(a: Assets, rng: np.random.Generator) -> np.ndarray:
    """A BGRA object: a sprite, or a (rectangular or elliptic) patch of a photo."""
    if rng.random() < 0.6:
        return a.sprites[rng.integers(len(a.sprites))].copy()
    bg = a.backgrounds[rng.integers(len(a.backgrounds))]
    h, w = bg.shape[:2]
    ph, pw = int(rng.uniform(0.1, 0.4) * h), int(rng.uniform(0.1, 0.4) * w)
    y, x = rng.integers(0, h - ph), rng.integers(0, w - pw)
    patch = bg[y:y + ph, x:x + pw]
    alpha = np.full((ph, pw), 255, np.uint8)
    if rng.random() < 0.5:
        alpha[:] = 0
        cv2.ellipse(alpha, (pw // 2, ph // 2), (pw // 2, ph // 2), 0, 0, 360, 255, -1)
    return np.dstack([patch, alpha])


def _paste(frame: np.ndarray, obj: np.ndarray, cx: float, cy: float, size: float) -> tuple[float, float, float, float]:
    """Alpha-blend obj scaled to sqrt(w*h)=size centred at (cx, cy); returns its tight box xywh (unclipped)."""
    oh, ow = obj.shape[:2]
    s = size / math.sqrt(oh * ow)
    w, h = max(2, int(round(ow * s))), max(2, int(round(oh * s)))
    o = cv2.resize(obj, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx1 > fx0 and fy1 > fy0:
        part = o[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
        al = part[..., 3:4].astype(np.float32) / 255
        region = frame[fy0:fy1, fx0:fx1]
        region[:] = (part[..., :3] * al + region * (1 - al)).astype(np.uint8)
    ys, xs = np.nonzero(o[..., 3] > 32)
    if len(ys) == 0:
        return (x0, y0, w, h)
    return (x0 + xs.min(), y0 + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def _photometric(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = frame.astype(np.float32)
    f = f * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)
    f = f * rng.uniform(0.85, 1.15, size=3)
    if rng.random() < 0.3:
        f += rng.normal(0, rng.uniform(2, 10), f.shape)
    out = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        k = int(rng.integers(3, 10))
        kernel = np.zeros((k, k), np.float32)
        angle = rng.uniform(0, np.pi)
        c = (k - 1) / 2
        cv2.line(kernel, (int(c - c * np.cos(angle)), int(c - c * np.sin(angle))),
                 (int(c + c * np.cos(angle)), int(c + c * np.sin(angle))), 1.0, 1)
        out = cv2.filter2D(out, -1, kernel / max(kernel.sum(), 1))
    elif rng.random() < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.0))
    return out


def _recolour(obj: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    o = obj.copy()
    o[..., :3] = np.clip(o[..., :3].astype(np.float32) * rng.uniform(0.5, 1.5, 3), 0, 255).astype(np.uint8)
    return o


def render_sample(a: Assets, rng: np.random.Generator, template_size: int, search_size: int,
                  search_factor: float = 4.5, template_factor: float = 2.0):
    """One training sample: (template, online, search) normalised (3,T,T)/(3,T,T)/(3,S,S),
    target ltrb normalised to the search crop (4,), box valid flag, score label."""
    target = _object(a, rng)
    size0 = rng.uniform(18, 60)
    negative = rng.random() < 0.25
    distractors = [_object(a, rng) for _ in range(rng.integers(0, 4))]
    if rng.random() < 0.3:
        distractors.append(_recolour(target, rng))
    base_pan = rng.uniform(0, 200, 2)
    frames, boxes = [], []
    for k in range(3):
        pan = base_pan + rng.normal(0, 25, 2) * (k > 0)
        frame = _background(a, rng, pan, rng.uniform(1.0, 1.3)).copy()
        size = size0 * (1.0 if k == 0 else math.exp(rng.normal(0, 0.2)))
        cx = rng.uniform(0.2, 0.8) * FRAME_W
        cy = rng.uniform(0.2, 0.8) * FRAME_H
        for d in distractors:
            dx, dy = rng.uniform(0, FRAME_W), rng.uniform(0, FRAME_H)
            if k == 1 and rng.random() < 0.5:  # near the target in the search frame
                dx, dy = cx + rng.normal(0, 2 * size), cy + rng.normal(0, 2 * size)
            _paste(frame, d, dx, dy, size * rng.uniform(0.6, 1.4))
        hide = k == 1 and negative
        box = _paste(frame, target, cx, cy, size) if not hide else (cx - size / 2, cy - size / 2, size, size)
        visible = 1.0
        if k == 1 and not negative and rng.random() < 0.25:  # partial occluder
            occ = _object(a, rng)
            frac = rng.uniform(0.2, 0.7)
            ox = box[0] + (box[2] * (1 - frac / 2) if rng.random() < 0.5 else box[2] * frac / 2 - box[2] * 0.5)
            _paste(frame, occ, ox, box[1] + box[3] / 2, math.sqrt(box[2] * box[3]) * 1.2)
            visible = 1 - frac * 0.8
        frames.append(_photometric(frame, rng))
        boxes.append(box)
    t = sample_target(frames[0], boxes[0], template_factor, template_size).patch
    online_src = 2 if rng.random() < 0.7 else 0
    o = sample_target(frames[online_src], boxes[online_src], template_factor, template_size).patch
    # search around a jittered "previous" box
    bx, by, bw, bh = boxes[1]
    s = math.sqrt(bw * bh)
    jcx = bx + bw / 2 + (rng.random() - 0.5) * s * 2.0
    jcy = by + bh / 2 + (rng.random() - 0.5) * s * 2.0
    jw, jh = bw * math.exp(rng.normal(0, 0.2)), bh * math.exp(rng.normal(0, 0.2))
    jbox = (jcx - jw / 2, jcy - jh / 2, jw, jh)
    crop = sample_target(frames[1], jbox, search_factor, search_size)
    x1 = int(round(jcx - 0.5 * crop.side))
    y1 = int(round(jcy - 0.5 * crop.side))
    ltrb = np.array([(bx - x1), (by - y1), (bx + bw - x1), (by + bh - y1)], np.float32) / crop.side
    centre_in = 0 < (ltrb[0] + ltrb[2]) / 2 < 1 and 0 < (ltrb[1] + ltrb[3]) / 2 < 1
    label = float((not negative) and centre_in and visible > 0.45)
    box_valid = float((not negative) and centre_in)
    return (normalize_patch(t, MEAN, STD)[0], normalize_patch(o, MEAN, STD)[0],
            normalize_patch(crop.patch, MEAN, STD)[0], np.clip(ltrb, 0, 1), box_valid, label)


def render_batch(a: Assets, rng: np.random.Generator, n: int, template_size: int, search_size: int):
    items = [render_sample(a, rng, template_size, search_size) for _ in range(n)]
    return [np.stack([it[i] for it in items]).astype(np.float32) for i in range(6)]
