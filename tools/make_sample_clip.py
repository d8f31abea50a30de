"""Render the sample clip shipped in ``samples/`` (for the README quick start and the CLI tests).

Everything in the clip is CC0 / public domain, so the clip may be redistributed:

* background: scikit-image's bundled ``brick``, ``gravel`` and ``grass`` textures (CC0, from
  CC0Textures / DeviantArt), ``coffee`` (CC0, Rachel Michetti) and ``chelsea`` (CC0,
  Stefan van der Walt) as two posters on the wall;
* target and distractor: Kenney's "male_person" and "female_person" walk cycles, the
  occluder: Kenney's ``boxCrate`` and ``bush`` tiles, all CC0, as bundled with the ``arcade``
  package (``arcade/resources/assets/images``; not imported, only its image files are read).

The scene: a camera pans right along a brick wall; the target walks right, growing as it comes
closer; a similar-looking distractor walks the other way behind it and crosses it; the target
passes behind a crate and a bush in the foreground (partially occluded for a few frames).

Needs (generation only, not at run time): ``pip install scikit-image`` and the arcade images,
either ``pip install arcade`` or ``pip download arcade==3.3.3 --no-deps`` + unzip, then
``--arcade-images DIR``. Deterministic: the same inputs give the same frames.

    python tools/make_sample_clip.py                  # writes samples/sample_clip.mp4 + _gt.txt
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import cv2
import numpy as np

W, H = 640, 360            # frame size
N = 120                    # frames
FPS = 24.0
WORLD_W = 1000             # panorama width (the camera pans over WORLD_W - W pixels)
GROUND_Y = 250             # wall above, ground below (world rows)
PAN = 300.0                # total camera pan in pixels
CRATE_X = 640              # world x of the foreground occluder (left edge)
BUSH_X = 930               # world x of a bush (foreground clutter, off the target's path)


def arcade_images_dir(explicit: str | None) -> Path:
    """The folder of arcade's bundled Kenney images (without importing arcade)."""
    if explicit:
        return Path(explicit)
    spec = importlib.util.find_spec("arcade")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("arcade not found: pip install arcade, or pip download arcade==3.3.3 "
                         "--no-deps, unzip it and pass --arcade-images .../arcade/resources/"
                         "assets/images")
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "assets" / "images"


def tint(gray: np.ndarray, dark: tuple[int, int, int], light: tuple[int, int, int]) -> np.ndarray:
    """Grey uint8 (H, W) -> BGR uint8 between two colours."""
    t = (gray.astype(np.float32) / 255.0)[..., None]
    return (np.array(dark, np.float32) * (1 - t) + np.array(light, np.float32) * t).astype(np.uint8)


def tile(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Repeat ``img`` to cover (height, width)."""
    reps = (height // img.shape[0] + 1, width // img.shape[1] + 1) + (1,) * (img.ndim - 2)
    return np.tile(img, reps)[:height, :width]


def make_world() -> np.ndarray:
    """The BGR panorama (H, WORLD_W): brick wall with two posters, grass strip, gravel ground."""
    from skimage import data

    brick = cv2.resize(data.brick(), (256, 256), interpolation=cv2.INTER_AREA)
    wall = tile(tint(brick, (40, 50, 90), (150, 170, 215)), GROUND_Y, WORLD_W)
    gravel = cv2.resize(data.gravel(), (256, 256), interpolation=cv2.INTER_AREA)
    ground = tile(tint(gravel, (60, 75, 90), (175, 190, 205)), H - GROUND_Y, WORLD_W)
    world = np.vstack([wall, ground])
    grass = cv2.resize(data.grass(), (256, 128), interpolation=cv2.INTER_AREA)[:24]
    world[GROUND_Y - 12:GROUND_Y + 12] = tile(tint(grass, (20, 70, 30), (90, 200, 120)), 24, WORLD_W)
    for img, (x, y) in ((data.coffee(), (70, 40)), (data.chelsea(), (560, 30))):
        poster = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), (180, 120),
                            interpolation=cv2.INTER_AREA)
        cv2.rectangle(world, (x - 6, y - 6), (x + 186, y + 126), (30, 30, 30), -1)
        world[y:y + 120, x:x + 180] = poster
    return world


def load_rgba(path: Path, flip: bool = False) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        raise SystemExit(f"cannot read RGBA image {path}")
    return img[:, ::-1].copy() if flip else img


def paste(frame: np.ndarray, rgba: np.ndarray, x: float, y: float, scale: float
          ) -> tuple[float, float, float, float] | None:
    """Alpha-blend ``rgba`` scaled by ``scale`` with its top-left at (x, y) (frame pixels).

    Returns the tight (x, y, w, h) box of its opaque pixels in frame coordinates, clipped to
    the frame (None if entirely outside).
    """
    h, w = rgba.shape[:2]
    sw, sh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    pre = rgba.astype(np.float32)
    pre[..., :3] *= pre[..., 3:4] / 255.0           # premultiply: no dark fringes when scaling
    small = cv2.resize(pre, (sw, sh), interpolation=cv2.INTER_AREA)
    # sub-pixel placement: shift by the fractional part before pasting at the integer part
    ix, iy = int(np.floor(x)), int(np.floor(y))
    m = np.array([[1, 0, x - ix], [0, 1, y - iy]], dtype=np.float32)
    img = cv2.warpAffine(small, m, (sw + 1, sh + 1), flags=cv2.INTER_LINEAR)
    alpha = img[..., 3] / 255.0
    fx1, fy1 = max(ix, 0), max(iy, 0)
    fx2, fy2 = min(ix + sw + 1, frame.shape[1]), min(iy + sh + 1, frame.shape[0])
    if fx2 <= fx1 or fy2 <= fy1:
        return None
    sub = img[fy1 - iy:fy2 - iy, fx1 - ix:fx2 - ix]
    a = alpha[fy1 - iy:fy2 - iy, fx1 - ix:fx2 - ix, None]
    region = frame[fy1:fy2, fx1:fx2].astype(np.float32)
    frame[fy1:fy2, fx1:fx2] = np.clip(sub[..., :3] + region * (1 - a), 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(alpha > 0.5)
    if xs.size == 0:
        return None
    bx1, by1 = max(ix + xs.min(), 0), max(iy + ys.min(), 0)
    bx2, by2 = min(ix + xs.max() + 1, frame.shape[1]), min(iy + ys.max() + 1, frame.shape[0])
    if bx2 <= bx1 or by2 <= by1:
        return None
    return float(bx1), float(by1), float(bx2 - bx1), float(by2 - by1)


def smooth(t: float) -> float:
    """Ease-in-out on [0, 1]."""
    return t * t * (3 - 2 * t)


def render(images: Path) -> tuple[list[np.ndarray], list[tuple[float, float, float, float]]]:
    """All frames (BGR) and the target's ground-truth boxes (full extent, occluded or not)."""
    world = make_world()
    chars = images / "animated_characters"
    target = [load_rgba(chars / "male_person" / f"malePerson_walk{i}.png") for i in range(8)]
    other = [load_rgba(chars / "female_person" / f"femalePerson_walk{i}.png", flip=True)
             for i in range(8)]
    crate = load_rgba(images / "tiles" / "boxCrate.png")
    bush = load_rgba(images / "tiles" / "bush.png")
    frames, boxes = [], []
    for k in range(N):
        t = k / (N - 1)
        cam_x = PAN * smooth(t)
        cam_y = 3.0 * np.sin(2 * np.pi * k / 37.0)            # a little hand shake
        m = np.array([[1, 0, -cam_x], [0, 1, -cam_y]], dtype=np.float32)
        frame = cv2.warpAffine(world, m, (W, H), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        # distractor: farther away (smaller, higher feet), walks left, drawn first (behind)
        d_scale = 0.85
        d_x = 900 - 6.0 * k - cam_x
        d_feet = 300 - cam_y
        paste(frame, other[(k // 3) % 8], d_x, d_feet - 128 * d_scale, d_scale)
        # target: walks right, comes closer (grows), bobs slightly while walking
        scale = 0.95 + 0.45 * t
        feet = 320 + 26 * t - cam_y + 2.0 * abs(np.sin(np.pi * k / 6.0))
        x = 120 + 6.2 * k - cam_x
        box = paste(frame, target[(k // 3) % 8], x, feet - 128 * scale, scale)
        # foreground occluder (in front of the target)
        paste(frame, crate, CRATE_X - cam_x, 364 - 110 - cam_y, 0.86)
        paste(frame, bush, BUSH_X - cam_x, 368 - 80 - cam_y, 0.62)
        frames.append(frame)
        boxes.append(box if box is not None else (float("nan"),) * 4)
    return frames, boxes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "samples" / "sample_clip.mp4")
    parser.add_argument("--arcade-images", default=None,
                        help="arcade/resources/assets/images folder (default: find installed arcade)")
    parser.add_argument("--preview", type=Path, default=None,
                        help="also write a PNG of frames 0, 60, 92 side by side")
    args = parser.parse_args(argv)
    frames, boxes = render(arcade_images_dir(args.arcade_images))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fourcc = "MJPG" if args.out.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter.fourcc(*fourcc), FPS, (W, H))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {args.out}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    gt = args.out.with_name(args.out.stem + "_gt.txt")
    gt.write_text("".join(f"{x:.0f},{y:.0f},{w:.0f},{h:.0f}\n" for x, y, w, h in boxes))
    if args.preview:
        cv2.imwrite(str(args.preview), np.hstack([frames[0], frames[60], frames[92]]))
    x, y, w, h = boxes[0]
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(frames)} frames "
          f"{W}x{H} @ {FPS:g} fps) and {gt.name}; init box {x:.0f},{y:.0f},{w:.0f},{h:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
