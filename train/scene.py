"""Scene simulation: a camera over a background, objects pasted with alpha, motion, occluders, look-alikes
and photometric changes (what one synthetic three-frame clip is made of)."""
from __future__ import annotations

import math

import cv2
import numpy as np

from assets import Assets

FRAME_W, FRAME_H = 320, 240
REGION_RATE = 0.35  # share of samples whose target is a textured part of the background itself


def _noise_background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    cells = int(rng.integers(4, 24))
    noise = rng.random((h // cells + 2, w // cells + 2, 3)) * 255
    out = cv2.resize(noise.astype(np.uint8), (w + 2 * cells, h + 2 * cells), interpolation=cv2.INTER_CUBIC)
    return out[cells:cells + h, cells:cells + w].copy()


class Scene:
    """A large background canvas; ``view`` returns the camera's FRAME_H x FRAME_W frame."""

    def __init__(self, a: Assets, rng: np.random.Generator) -> None:
        kind = rng.random()
        cw, ch = FRAME_W * 2, FRAME_H * 2
        if kind < 0.12:
            canvas = _noise_background(rng, cw, ch)
        else:
            bg = a.backgrounds[rng.integers(len(a.backgrounds))]
            h, w = bg.shape[:2]
            s = max(cw / w, ch / h) * rng.uniform(1.0, 1.6)
            canvas = cv2.resize(bg, (int(math.ceil(w * s)), int(math.ceil(h * s))), interpolation=cv2.INTER_LINEAR)
            y0, x0 = rng.integers(0, canvas.shape[0] - ch + 1), rng.integers(0, canvas.shape[1] - cw + 1)
            canvas = canvas[y0:y0 + ch, x0:x0 + cw].copy()
            if rng.random() < 0.5:
                canvas = canvas[:, ::-1].copy()
            if kind > 0.85:  # clutter of sprites on the ground
                for _ in range(int(rng.integers(10, 40))):
                    _paste(canvas, _object(a, rng)[0], rng.uniform(0, cw), rng.uniform(0, ch), rng.uniform(8, 60))
        self.canvas = canvas
        self.origin = np.array([rng.uniform(0, cw - FRAME_W), rng.uniform(0, ch - FRAME_H)])

    def view(self, pan: np.ndarray, zoom: float) -> np.ndarray:
        """Frame with its top-left at origin + pan, magnified by zoom about the frame centre."""
        c = self.origin + pan + np.array([FRAME_W, FRAME_H]) / 2
        m = np.array([[zoom, 0, FRAME_W / 2 - zoom * c[0]], [0, zoom, FRAME_H / 2 - zoom * c[1]]], np.float32)
        return cv2.warpAffine(self.canvas, m, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)


def _object(a: Assets, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """A BGRA object and a key to draw a *similar* one: ('sprite', index) or ('photo', image, x, y, w, h)."""
    if rng.random() < 0.55:
        i = int(rng.integers(len(a.sprites)))
        return a.sprites[i], ("sprite", i)
    bi = int(rng.integers(len(a.backgrounds)))
    bg = a.backgrounds[bi]
    h, w = bg.shape[:2]
    ph = int(rng.uniform(0.06, 0.35) * h)
    pw = int(np.clip(ph * math.exp(rng.normal(0, 0.4)), 0.05 * w, 0.5 * w))
    y, x = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    return _photo_patch(bg, x, y, pw, ph, rng), ("photo", bi, x, y, pw, ph)


def _photo_patch(bg: np.ndarray, x: int, y: int, pw: int, ph: int, rng: np.random.Generator) -> np.ndarray:
    patch = bg[y:y + ph, x:x + pw]
    alpha = np.full((ph, pw), 255, np.uint8)
    if rng.random() < 0.5:
        alpha[:] = 0
        cv2.ellipse(alpha, (pw // 2, ph // 2), (max(1, pw // 2), max(1, ph // 2)), 0, 0, 360, 255, -1)
    out = np.dstack([patch, alpha])
    if rng.random() < 0.3:  # a frame so the patch stands out from the scene
        cv2.rectangle(out, (0, 0), (pw - 1, ph - 1), (*rng.integers(0, 256, 3).tolist(), 255), max(1, pw // 12))
    return out


def _similar(a: Assets, key: tuple, obj: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A distractor resembling the target: another pose / a neighbouring photo patch / a recoloured copy."""
    r = rng.random()
    if key[0] == "sprite" and len(a.groups[key[1]]) > 1 and r < 0.6:
        return a.sprites[int(rng.choice(a.groups[key[1]]))]
    if key[0] == "region" and r < 0.6:  # a neighbouring patch of the same scene
        canvas, (x, y, pw, ph) = key[1], (int(v) for v in key[2:])
        h, w = canvas.shape[:2]
        pw, ph = max(2, min(pw, w - 1)), max(2, min(ph, h - 1))
        nx = int(np.clip(x + rng.normal(0, 1.5) * pw, 0, w - pw))
        ny = int(np.clip(y + rng.normal(0, 1.5) * ph, 0, h - ph))
        return np.dstack([canvas[ny:ny + ph, nx:nx + pw], np.full((ph, pw), 255, np.uint8)])
    if key[0] == "photo" and r < 0.5:
        _, bi, x, y, pw, ph = key
        bg = a.backgrounds[bi]
        h, w = bg.shape[:2]
        nx = int(np.clip(x + rng.normal(0, pw), 0, w - pw))
        ny = int(np.clip(y + rng.normal(0, ph), 0, h - ph))
        return _photo_patch(bg, nx, ny, pw, ph, rng)
    o = obj.copy()
    o[..., :3] = np.clip(o[..., :3].astype(np.float32) * rng.uniform(0.6, 1.4, 3) + rng.uniform(-20, 20, 3),
                         0, 255).astype(np.uint8)
    return o


def _transform(obj: np.ndarray, aspect: float, angle: float) -> np.ndarray:
    """Aspect change (w *= aspect) and in-plane rotation of a BGRA object (canvas grows to fit)."""
    h, w = obj.shape[:2]
    if abs(aspect - 1) > 0.02:
        obj = cv2.resize(obj, (max(2, int(round(w * aspect))), h), interpolation=cv2.INTER_LINEAR)
        h, w = obj.shape[:2]
    if abs(angle) > 1:
        c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
        nw, nh = int(w * c + h * s) + 2, int(w * s + h * c) + 2
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[:, 2] += ((nw - w) / 2, (nh - h) / 2)
        obj = cv2.warpAffine(obj, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return obj


def _paste(frame: np.ndarray, obj: np.ndarray, cx: float, cy: float, size: float) -> tuple[float, float, float, float]:
    """Alpha-blend obj scaled to sqrt(w*h)=size centred at (cx, cy); returns its tight box xywh (unclipped)."""
    oh, ow = obj.shape[:2]
    s = size / math.sqrt(oh * ow)
    w, h = max(2, int(round(ow * s))), max(2, int(round(oh * s)))
    o = cv2.resize(obj, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    if min(w, h) > 6:  # soft matte edge, as a real object's boundary is after optics and sensor
        o = o.copy()
        o[..., 3] = cv2.GaussianBlur(o[..., 3], (0, 0), 0.7)
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


def _photometric(frame: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    gain = math.exp(rng.normal(0, 0.25 * strength)) * np.exp(rng.normal(0, 0.08 * strength, size=3))
    lut = np.arange(256, dtype=np.float32)[:, None] * gain[None, :] + rng.normal(0, 15 * strength)
    out = cv2.LUT(frame, np.clip(lut, 0, 255).astype(np.uint8).reshape(256, 1, 3))
    if rng.random() < 0.2 * strength:  # shadow / light ramp across the frame
        horizontal = rng.random() < 0.5
        ramp = np.linspace(rng.uniform(0.4, 1.0), rng.uniform(1.0, 1.6), FRAME_W if horizontal else FRAME_H)
        ramp = ramp[None, :, None] if horizontal else ramp[:, None, None]
        out = np.clip(out * ramp.astype(np.float32), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # sensor noise (OpenCV's generator, seeded from ours)
        cv2.setRNGSeed(int(rng.integers(1 << 30)))
        noise = np.empty(out.shape, np.int16)
        cv2.randn(noise, 0, float(rng.uniform(2, 8)))
        out = np.clip(out.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.25 * strength:
        k = int(rng.integers(3, 11))
        kernel = np.zeros((k, k), np.float32)
        angle = rng.uniform(0, np.pi)
        c = (k - 1) / 2
        cv2.line(kernel, (int(round(c - c * np.cos(angle))), int(round(c - c * np.sin(angle)))),
                 (int(round(c + c * np.cos(angle))), int(round(c + c * np.sin(angle)))), 1.0, 1)
        out = cv2.filter2D(out, -1, kernel / max(kernel.sum(), 1))
    elif r < 0.45 * strength:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.8))
    if rng.random() < 0.2:  # JPEG-like loss of detail: down/up-sampling
        s = rng.uniform(0.4, 0.8)
        small = cv2.resize(out, (int(FRAME_W * s), int(FRAME_H * s)), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (FRAME_W, FRAME_H), interpolation=cv2.INTER_LINEAR)
    return out


def _visible_fraction(mask_before: float, box: tuple, occ_box: tuple) -> float:
    x0, y0 = max(box[0], occ_box[0]), max(box[1], occ_box[1])
    x1, y1 = min(box[0] + box[2], occ_box[0] + occ_box[2]), min(box[1] + box[3], occ_box[1] + occ_box[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return mask_before * (1 - inter / max(1e-6, box[2] * box[3]))


def _region_patch(canvas: np.ndarray, region: tuple) -> np.ndarray:
    x, y, w, h = (int(round(v)) for v in region)
    x, y = max(0, x), max(0, y)
    patch = canvas[y:y + max(2, h), x:x + max(2, w)]
    return np.dstack([patch, np.full(patch.shape[:2], 255, np.uint8)])


def _pick_region(scene: Scene, rng: np.random.Generator, cx: float, cy: float, size: float, aspect: float):
    """A canvas box (x, y, w, h) seen at (cx, cy) in frame 0, or None if that part of the scene is too flat."""
    w, h = size * math.sqrt(aspect), size / math.sqrt(aspect)
    x, y = cx - w / 2 + scene.origin[0], cy - h / 2 + scene.origin[1]
    x0, y0 = int(max(0, x)), int(max(0, y))
    patch = scene.canvas[y0:int(y + h) + 1, x0:int(x + w) + 1]
    if patch.size == 0 or min(patch.shape[:2]) < 2:
        return None
    g = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return (x, y, w, h) if g.std() > 14 else None
