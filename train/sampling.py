"""Training samples: crops of synthetic scenes as the tracker sees them (licences: assets.py).

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

import math
from pathlib import Path

import cv2
import numpy as np

from assets import Assets
from real_video import sample_crops
from mixformerv2_cpu.geometry import crop_side, sample_target
from mixformerv2_cpu.preprocess import normalize_patch
from mixformerv2_export.network import INPUT_MEAN, INPUT_STD
from scene import (FRAME_H, FRAME_W, REGION_RATE, Scene, _object, _paste, _photometric, _pick_region, _region_patch,
                   _similar, _transform, _visible_fraction)

# crop factors: the template's, and the search crop's of the project's own models (the `default` preset's
# value for them since v4; train.py --search-factor sets it); runs recorded without a factor used 4.5
TEMPLATE_FACTOR, SEARCH_FACTOR, LEGACY_SEARCH_FACTOR = 2.0, 3.5, 4.5
NEGATIVE_RATE = 0.25
GRAY_RATE = 0.12  # share of samples rendered in grayscale (all three frames), as from a mono camera
TINY_RATE = 0.0  # share of synthetic samples drawn with a 4-12 px target and a look-alike beside it (train.py --tiny-rate)
LOOKALIKE_RATE = 0.6  # share of "elsewhere" negatives whose search crop is centred on a look-alike


def render_sample(a: Assets, rng: np.random.Generator, template_size: int, search_size: int):
    """One sample: template, online template (3,T,T), search (3,S,S) normalised RGB; target ltrb in the
    search crop normalised to 0..1 (4,); box-valid flag; score label (1 = target found in the crop)."""
    scene = Scene(a, rng)
    # a tiny target (aerial footage) with look-alikes beside it; no draw when the rate is 0, so runs
    # without --tiny-rate keep their data stream
    tiny = TINY_RATE > 0 and rng.random() < TINY_RATE
    size0 = math.exp(rng.uniform(math.log(4), math.log(12))) if tiny else math.exp(rng.uniform(math.log(5), math.log(80)))
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
    if tiny:
        n_similar = max(n_similar, 1)
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
            if k == 1 and (tiny or rng.random() < 0.5):  # near the target in the search frame
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
    o = sample_target(frames[2], _estimate(boxes[2], rng), TEMPLATE_FACTOR, template_size).patch \
        if rng.random() < 0.75 else t
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
        frames, (t, o) = _gray(frames), _gray([t, o])
    crop, ltrb, centre_in = _search_crop(frames[1], (jcx - jw / 2, jcy - jh / 2, jw, jh), boxes[1], search_size)
    present = neg_kind not in ("absent", "elsewhere")
    label = float(present and centre_in and visible[1] > 0.5)
    box_valid = float(present and centre_in and visible[1] > 0.3)
    return _tensors(t, o, crop, ltrb, box_valid, label)


def _estimate(box, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """``box`` (xywh) slightly wrong, as the tracker's own estimate of it would be."""
    s = math.sqrt(box[2] * box[3])
    w, h = box[2] * math.exp(rng.normal(0, 0.08)), box[3] * math.exp(rng.normal(0, 0.08))
    cx, cy = box[0] + box[2] / 2 + rng.normal(0, 0.08) * s, box[1] + box[3] / 2 + rng.normal(0, 0.08) * s
    return (cx - w / 2, cy - h / 2, w, h)


def _search_crop(frame: np.ndarray, centre_box, target, search_size: int):
    """Search crop around ``centre_box`` -> (patch, target ltrb normalised to the crop (4,), whether the
    target's centre lies in the crop)."""
    crop = sample_target(frame, centre_box, SEARCH_FACTOR, search_size)
    x1 = int(round(centre_box[0] + centre_box[2] / 2 - 0.5 * crop.side))
    y1 = int(round(centre_box[1] + centre_box[3] / 2 - 0.5 * crop.side))
    bx, by, bw, bh = target
    ltrb = np.array([(bx - x1), (by - y1), (bx + bw - x1), (by + bh - y1)], np.float32) / crop.side
    centre_in = 0 < (ltrb[0] + ltrb[2]) / 2 < 1 and 0 < (ltrb[1] + ltrb[3]) / 2 < 1
    return crop.patch, ltrb, centre_in


def _tensors(t, o, search, ltrb, box_valid: float, label: float):
    return (normalize_patch(t, INPUT_MEAN, INPUT_STD)[0], normalize_patch(o, INPUT_MEAN, INPUT_STD)[0],
            normalize_patch(search, INPUT_MEAN, INPUT_STD)[0], np.clip(ltrb, 0, 1), box_valid, label)


def _gray(patches):
    return [cv2.cvtColor(cv2.cvtColor(p, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for p in patches]


def render_real_sample(data, rng: np.random.Generator, template_size: int, search_size: int,
                       negative_rate: float = 0.5, score_teacher=None):
    """One sample of real video (``real_video.Tracks``), same layout as :func:`render_sample`:
    positives, and with ``negative_rate`` look-alike negatives (another person at the crop centre, the
    target outside). With ``score_teacher`` (a tracker with ``init(frame, box)`` and ``score_at(frame,
    box, within)``, e.g. FEAR-XS) the score label is the teacher's confidence that its target is inside
    this search crop (same template, same centre, ``within`` = the crop's side; same colour or gray
    frames) instead of 1 / 0; the box-valid flag stays 1 / 0."""
    negative = rng.random() < negative_rate
    picked = None
    while picked is None:
        picked = sample_crops(data, rng, negative, factor=SEARCH_FACTOR)
    (fi, bi), (fk, bk), (fj, centre), target = picked
    frames = {f: np.ascontiguousarray(data.frames[f]) for f in {fi, fk, fj}}
    if rng.random() < GRAY_RATE:
        frames = dict(zip(frames, _gray(list(frames.values()))))
    t = sample_target(frames[fi], bi, TEMPLATE_FACTOR, template_size).patch
    o = sample_target(frames[fk], _estimate(bk, rng), TEMPLATE_FACTOR, template_size).patch if fk != fi else t
    patch, ltrb, centre_in = _search_crop(frames[fj], centre, target, search_size)
    label = float(centre_in and not negative)
    score = label
    if score_teacher is not None:
        score_teacher.init(frames[fi], tuple(bi))
        side = crop_side(centre, SEARCH_FACTOR)  # our search crop's side
        score = float(np.clip(score_teacher.score_at(frames[fj], tuple(centre), within=side), 0.0, 1.0))
    return _tensors(t, o, patch, ltrb, label, score)


def render_batch(a: Assets, rng: np.random.Generator, n: int, template_size: int, search_size: int):
    return stack_samples([render_sample(a, rng, template_size, search_size) for _ in range(n)])


def stack_samples(items) -> list[np.ndarray]:
    """Samples (each the 6-tuple of :func:`render_sample`) -> the 6 float32 batch arrays."""
    return [np.stack([it[i] for it in items]).astype(np.float32) for i in range(6)]


def preview(cache: Path, out: Path, n: int = 12, seed: int = 0, template_size: int = 96, search_size: int = 192,
            real: bool = False):
    """Write a contact sheet (template | online | search with the target box, red = negative) of
    synthetic samples, or with ``real`` of real-video samples (``real_video.py``)."""
    if real:
        from real_video import load_tracks
        data = load_tracks(cache)
        render = lambda rng: render_real_sample(data, rng, template_size, search_size)  # noqa: E731
    else:
        a = Assets.load(cache)
        render = lambda rng: render_sample(a, rng, template_size, search_size)  # noqa: E731
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        t, o, s, ltrb, valid, label = render(rng)
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

    args = [a for a in sys.argv[1:] if a != "--real"]
    preview(Path(args[0] if args else "runs/cache"), Path(args[1] if len(args) > 1 else "runs/preview.png"),
            real="--real" in sys.argv)
