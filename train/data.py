"""Synthetic tracking pairs from redistributable images (licences: training/README.md).

One sample renders three frames of one scene, as a short video would show it:

- a background (a CC0 / public-domain / CC-BY photo, a clutter of CC0 sprites over a photo, or
  procedural noise) seen by a camera that pans and zooms slightly between frames;
- the target: a CC0 sprite with its alpha mask (animated characters change pose between frames)
  or a rectangular/elliptic patch of a photo; it moves, changes scale, aspect and rotation;
- distractors: other sprites or photo patches, and "similar" ones (a recoloured copy of the target,
  another pose of the same character, a neighbouring patch of the same photo), placed near the target
  in the search frame half of the time;
- partial occluders, illumination change (gain, offset, colour cast, shadow ramp), motion or
  Gaussian blur, sensor noise, and small targets (down to ~5 px, as in aerial footage).

Crops use the runtime's own crop rule and normalisation (``mixformerv2_cpu.geometry.sample_target``,
``mixformerv2_cpu.preprocess.normalize_patch``): template = frame 0 (factor 2.0), online template =
frame 2 around a slightly wrong box (as the tracker's own estimate would be) or frame 0, search =
frame 1 (factor 4.5) around a jittered "previous" box. A quarter of the samples are negatives for the
score head: the target is absent, fully hidden, or outside the search crop (a lost tracker).
"""
from __future__ import annotations

import glob
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mixformerv2_cpu.geometry import sample_target
from mixformerv2_cpu.preprocess import normalize_patch
from mixformerv2_export.model import INPUT_MEAN, INPUT_STD

TEMPLATE_FACTOR, SEARCH_FACTOR = 2.0, 4.5  # the runtime presets' values
# scikit-image images whose docstrings state CC0 / public domain / no known copyright restrictions
# ("moon" and "page" are not used: their docstrings state no licence)
SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "cat", "cell", "chelsea", "coffee", "grass", "gravel", "horse",
                  "hubble_deep_field", "immunohistochemistry", "retina", "rocket", "text", "coins", "clock")
FRAME_W, FRAME_H = 320, 240
NEGATIVE_RATE = 0.25
GRAY_RATE = 0.12  # share of samples rendered in grayscale (all three frames), as from a mono camera
LOOKALIKE_RATE = 0.6  # share of "elsewhere" negatives whose search crop is centred on a look-alike


def _bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = img.astype(np.float32)
        img = (255 * (img - img.min()) / max(1e-6, float(np.ptp(img)))).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1])


def arcade_image_dir(cache: Path) -> Path:
    """Extract arcade 3.3.3's CC0 (Kenney) images from its wheel (``pip download arcade==3.3.3 --no-deps``)."""
    out = cache / "arcade_images"
    root = out / "arcade/resources/assets/images"
    if not root.is_dir():
        wheels = sorted(glob.glob(str(cache / "arcade-*.whl")))
        if not wheels:
            raise FileNotFoundError(f"no arcade wheel in {cache}: run pip download arcade==3.3.3 --no-deps -d {cache}")
        with zipfile.ZipFile(wheels[-1]) as z:
            for name in z.namelist():
                if name.startswith("arcade/resources/assets/images/") and name.endswith((".png", ".txt")):
                    z.extract(name, out)
    return root


def _group_name(path: Path) -> str:
    """Sprites of one animated character / one object family share a group (pose changes)."""
    stem = re.sub(r"(_?(walk|climb|idle|jump|fall|hurt|duck|hang|cheer|kick|slide|stand|swim|skid|talk|"
                  r"action|attack|back|hit|run|show)\d*|\d+)$", "", path.stem, flags=re.I)
    return f"{path.parent.name}/{stem}"


@dataclass
class Assets:
    backgrounds: list[np.ndarray]
    sprites: list[np.ndarray]  # BGRA, cropped to the alpha bounding box
    groups: list[list[int]] = field(default_factory=list)  # sprite index -> indices of its group (incl. itself)

    @classmethod
    def load(cls, cache: Path) -> "Assets":
        import skimage.data
        from sklearn.datasets import load_sample_images

        bgs = [_bgr(getattr(skimage.data, n)()) for n in SKIMAGE_IMAGES]
        bgs += [_bgr(im) for im in load_sample_images().images]  # china, flower: CC-BY 2.0
        root = arcade_image_dir(cache)
        sprites, names = [], []
        for p in sorted(root.rglob("*.png")):
            low = str(p.relative_to(root)).lower()
            if "background" in low or "parallax" in low or low.startswith(("spritesheets", "test_textures")):
                continue  # own licence files / sheets of many sprites
            im = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if im is None or im.ndim != 3 or im.shape[2] != 4 or min(im.shape[:2]) < 12:
                continue
            ys, xs = np.nonzero(im[..., 3] > 32)
            if len(ys) < 100:
                continue
            im = im[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            if max(im.shape[:2]) / min(im.shape[:2]) > 4:
                continue
            sprites.append(np.ascontiguousarray(im))
            names.append(_group_name(p))
        by_name: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            by_name.setdefault(n, []).append(i)
        return cls(bgs, sprites, [by_name[n] for n in names])


# ------------------------------------------------------------------------------------------ scene parts
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


REGION_RATE = 0.35  # share of samples whose target is a textured part of the background itself


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


# --------------------------------------------------------------------------------------------- samples
def render_sample(a: Assets, rng: np.random.Generator, template_size: int, search_size: int):
    """One sample: template, online template (3,T,T), search (3,S,S) normalised RGB; target ltrb in the
    search crop normalised to 0..1 (4,); box-valid flag; score label (1 = target found in the crop)."""
    scene = Scene(a, rng)
    size0 = math.exp(rng.uniform(math.log(5), math.log(80)))
    # aspect w/h: wide spread (people ~0.4, cars ~2) in 70 % of the samples
    aspect0 = math.exp(rng.uniform(math.log(1 / 3), math.log(3))) if rng.random() < 0.7 else math.exp(rng.normal(0, 0.1))
    cx, cy = rng.uniform(0.15, 0.85) * FRAME_W, rng.uniform(0.15, 0.85) * FRAME_H
    region = _pick_region(scene, rng, cx, cy, size0, aspect0) if rng.random() < REGION_RATE else None
    if region is not None:  # the target is a part of the scene itself: natural boundary, moves with the camera
        target, key = None, ("region", scene.canvas, *region)
    else:
        target, key = _object(a, rng)
    alt_pose = None
    if key[0] == "sprite" and len(a.groups[key[1]]) > 1 and rng.random() < 0.7:
        alt_pose = a.sprites[int(rng.choice(a.groups[key[1]]))]
    negative = rng.random() < NEGATIVE_RATE
    kinds, probs = (["occluded", "elsewhere"], [0.3, 0.7]) if region is not None else \
        (["absent", "occluded", "elsewhere"], [0.35, 0.2, 0.45])
    neg_kind = rng.choice(kinds, p=probs) if negative else ""
    distractors = [_object(a, rng)[0] for _ in range(int(rng.integers(0, 5)))]
    n_similar = int(rng.random() < 0.4) + int(rng.random() < 0.15)
    ref = target if target is not None else _region_patch(scene.canvas, region)
    distractors += [_similar(a, key, ref, rng) for _ in range(n_similar)]
    d_pos = [(rng.uniform(0, FRAME_W), rng.uniform(0, FRAME_H), rng.uniform(0.6, 1.5)) for _ in distractors]
    strength = rng.uniform(0.3, 1.0)  # how much the frames differ in appearance
    # trajectory: frame 0 (template), frame 1 (search), frame 2 (online template)
    speed = size0 * (rng.uniform(0.1, 0.8) if rng.random() < 0.85 else rng.uniform(0.8, 2.0))
    pan = np.zeros(2)
    frames, boxes, visible = [], [], [1.0, 1.0, 1.0]
    for k in range(3):
        if k:
            ang = rng.uniform(0, 2 * math.pi)
            cx += speed * math.cos(ang)
            cy += speed * math.sin(ang)
            pan = pan + rng.normal(0, (0.6 if region is not None else 0.3) * size0 + 3, 2)  # camera motion
        zoom = 1.0 if k == 0 else math.exp(rng.normal(0, 0.06 if region is None else 0.12))
        frame = scene.view(pan, zoom)
        size = size0 * (1.0 if k == 0 else math.exp(rng.normal(0, 0.15)))
        if region is not None:  # where the camera now sees the region
            rx, ry, rw, rh = region
            c = scene.origin + pan + np.array([FRAME_W, FRAME_H]) / 2
            box = (zoom * (rx - c[0]) + FRAME_W / 2, zoom * (ry - c[1]) + FRAME_H / 2, zoom * rw, zoom * rh)
            cx, cy, size = box[0] + box[2] / 2, box[1] + box[3] / 2, zoom * math.sqrt(rw * rh)
        for d, (dx, dy, ds) in zip(distractors, d_pos):
            if k == 1 and rng.random() < 0.5:  # near the target in the search frame
                dx, dy = cx + rng.normal(0, 1.5) * size, cy + rng.normal(0, 1.5) * size
            _paste(frame, d, dx + rng.normal(0, 3), dy + rng.normal(0, 3), size * ds)
        if region is None:
            obj = alt_pose if (alt_pose is not None and k > 0 and rng.random() < 0.5) else target
            angle = rng.normal(0, 8) if (k and rng.random() < 0.3) else 0.0
            obj = _transform(obj, aspect0 * (math.exp(rng.normal(0, 0.08)) if k else 1.0), angle)
            if k == 1 and neg_kind == "absent":
                box = (cx - size / 2, cy - size / 2, size, size)
            else:
                box = _paste(frame, obj, cx, cy, size)
        if k == 1 and (neg_kind == "occluded" or (not negative and rng.random() < 0.25)):
            occ, _ = _object(a, rng)
            occ = np.ascontiguousarray(occ.copy())
            occ[..., 3] = 255 if neg_kind == "occluded" else occ[..., 3]
            if neg_kind == "occluded":  # one opaque block over the whole target
                occ = cv2.resize(occ, (max(2, int(box[2] * 1.5)), max(2, int(box[3] * 1.5))))
                ob = _paste(frame, occ, box[0] + box[2] / 2 + rng.normal(0, 0.1) * box[2],
                            box[1] + box[3] / 2 + rng.normal(0, 0.1) * box[3], 1.5 * math.sqrt(box[2] * box[3]))
                visible[1] = _visible_fraction(1.0, box, ob)
            else:
                side = rng.choice([-1, 1])
                frac = rng.uniform(0.2, 0.7)
                ox = box[0] + box[2] / 2 + side * box[2] * (1 - frac)
                ob = _paste(frame, occ, ox, box[1] + box[3] / 2 + rng.normal(0, 0.2) * box[3],
                            math.sqrt(box[2] * box[3]) * 1.1)
                visible[1] = _visible_fraction(1.0, box, ob)
        frames.append(_photometric(frame, rng, strength if k else 0.3 * strength))
        boxes.append(box)
    # template: frame 0 around the true box; online template: frame 2 around a slightly wrong box
    t = sample_target(frames[0], boxes[0], TEMPLATE_FACTOR, template_size).patch
    if rng.random() < 0.75:
        ob = boxes[2]
        s = math.sqrt(ob[2] * ob[3])
        ow, oh = ob[2] * math.exp(rng.normal(0, 0.08)), ob[3] * math.exp(rng.normal(0, 0.08))
        ocx, ocy = ob[0] + ob[2] / 2 + rng.normal(0, 0.08) * s, ob[1] + ob[3] / 2 + rng.normal(0, 0.08) * s
        o = sample_target(frames[2], (ocx - ow / 2, ocy - oh / 2, ow, oh), TEMPLATE_FACTOR, template_size).patch
    else:
        o = t
    # search: frame 1 around a jittered previous box (the tracker's last estimate)
    bx, by, bw, bh = boxes[1]
    s = math.sqrt(bw * bh)
    reach = 0.8 if rng.random() < 0.8 else 1.8
    jcx = bx + bw / 2 + rng.uniform(-reach, reach) * s
    jcy = by + bh / 2 + rng.uniform(-reach, reach) * s
    jw, jh = bw * math.exp(rng.normal(0, 0.2)), bh * math.exp(rng.normal(0, 0.2))
    if neg_kind == "elsewhere":  # the tracker sits on something else: the whole target lies outside the crop
        half = 0.5 * math.ceil(math.sqrt(jw * jh) * SEARCH_FACTOR)
        gap = half + 0.5 * max(bw, bh) + rng.uniform(1, 1.5 * s)
        along = rng.uniform(-gap, gap)
        dx, dy = (gap, along) if rng.random() < 0.5 else (along, gap)
        inward = rng.random() < 0.8  # mostly towards the frame centre, so the crop shows the scene
        sx = (1 if bx + bw / 2 < FRAME_W / 2 else -1) if inward else rng.choice([-1, 1])
        sy = (1 if by + bh / 2 < FRAME_H / 2 else -1) if inward else rng.choice([-1, 1])
        jcx = bx + bw / 2 + dx * sx
        jcy = by + bh / 2 + dy * sy
    if neg_kind == "elsewhere" and rng.random() < LOOKALIKE_RATE:
        # a lost tracker sitting on a look-alike: the score must say "not the target" although the crop
        # centre shows something very similar
        _paste(frames[1], _similar(a, key, ref, rng), jcx + rng.normal(0, 0.15) * s, jcy + rng.normal(0, 0.15) * s,
               s * math.exp(rng.normal(0, 0.15)))
    if rng.random() < GRAY_RATE:
        frames = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for f in frames]
        t = cv2.cvtColor(cv2.cvtColor(t, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        o = cv2.cvtColor(cv2.cvtColor(o, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    crop = sample_target(frames[1], (jcx - jw / 2, jcy - jh / 2, jw, jh), SEARCH_FACTOR, search_size)
    x1 = int(round(jcx - 0.5 * crop.side))
    y1 = int(round(jcy - 0.5 * crop.side))
    ltrb = np.array([(bx - x1), (by - y1), (bx + bw - x1), (by + bh - y1)], np.float32) / crop.side
    centre_in = 0 < (ltrb[0] + ltrb[2]) / 2 < 1 and 0 < (ltrb[1] + ltrb[3]) / 2 < 1
    present = neg_kind not in ("absent", "elsewhere")
    label = float(present and centre_in and visible[1] > 0.5)
    box_valid = float(present and centre_in and visible[1] > 0.3)
    return (normalize_patch(t, INPUT_MEAN, INPUT_STD)[0], normalize_patch(o, INPUT_MEAN, INPUT_STD)[0],
            normalize_patch(crop.patch, INPUT_MEAN, INPUT_STD)[0], np.clip(ltrb, 0, 1), box_valid, label)


def render_batch(a: Assets, rng: np.random.Generator, n: int, template_size: int, search_size: int):
    items = [render_sample(a, rng, template_size, search_size) for _ in range(n)]
    return [np.stack([it[i] for it in items]).astype(np.float32) for i in range(6)]


def preview(cache: Path, out: Path, n: int = 12, seed: int = 0, template_size: int = 96, search_size: int = 192):
    """Write a contact sheet (template | online | search with the target box, red = negative)."""
    a = Assets.load(cache)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        t, o, s, ltrb, valid, label = render_sample(a, rng, template_size, search_size)
        imgs = [((x.transpose(1, 2, 0) * INPUT_STD + INPUT_MEAN) * 255).clip(0, 255).astype(np.uint8)[..., ::-1].copy()
                for x in (t, o, s)]
        if valid:
            p = (ltrb * search_size).astype(int)
            cv2.rectangle(imgs[2], (p[0], p[1]), (p[2], p[3]), (0, 255, 0) if label else (0, 200, 255), 1)
        else:
            cv2.rectangle(imgs[2], (0, 0), (search_size - 1, search_size - 1), (0, 0, 255), 3)
        col = np.vstack([imgs[0], imgs[1]])
        rows.append(np.hstack([col, imgs[2]]))
    grid = [np.hstack(rows[i:i + 4]) for i in range(0, len(rows) - len(rows) % 4, 4)]
    cv2.imwrite(str(out), np.vstack(grid))


if __name__ == "__main__":
    import sys

    preview(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/cache"), Path(sys.argv[2] if len(sys.argv) > 2 else
                                                                                "runs/preview.png"))
