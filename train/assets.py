"""Licensed training assets, each with its licence: the images the scenes are built from.

| source | used as | licence |
|---|---|---|
| scikit-image 0.26 wheel, ``skimage.data`` (SKIMAGE_IMAGES) | backgrounds, photo-patch targets/distractors | public domain / CC0 / "no known copyright restrictions", per each function's docstring ("moon" and "page" state none: not used) |
| scikit-learn wheel, ``load_sample_images()``: china.jpg, flower.jpg | backgrounds, photo patches | CC-BY 2.0 (``sklearn/datasets/images/README.txt``) |
| arcade 3.3.3 wheel, ``arcade/resources/assets/images`` (Kenney sprites) | targets, distractors, occluders | CC0 (``License.txt`` in that folder); sub-folders with their own licence files are skipped |
| NanoTrack v3 ``nanotrackv3.pth`` (HonglinChu/SiamTrackers@248663f), ``backbone.features.0..9`` | the stem's initial weights | Apache-2.0; trained upstream on research tracking datasets |

:data:`DATA_SOURCES` is the same table as data for the run record.
"""
from __future__ import annotations

import glob
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

# scikit-image images whose docstrings state CC0 / public domain / no known copyright restrictions
# ("moon" and "page" are not used: their docstrings state no licence)
SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "cat", "cell", "chelsea", "coffee", "grass", "gravel", "horse",
                  "hubble_deep_field", "immunohistochemistry", "retina", "rocket", "text", "coins", "clock")

DATA_SOURCES = [
    {"source": "scikit-image 0.26 wheel, skimage.data (" + ", ".join(sorted(SKIMAGE_IMAGES)) + ")",
     "licence": "public domain / CC0 / no known copyright restrictions, per each function's docstring"},
    {"source": "scikit-learn wheel, load_sample_images(): china.jpg, flower.jpg", "licence": "CC-BY 2.0"},
    {"source": "arcade==3.3.3 wheel, arcade/resources/assets/images (Kenney sprites)", "licence": "CC0"},
    {"source": "NanoTrack v3 nanotrackv3.pth (HonglinChu/SiamTrackers@248663f), backbone.features.0..9",
     "licence": "Apache-2.0; trained upstream on research tracking datasets (GOT-10k, LaSOT, COCO, ...)"},
    {"source": "procedural scenes, motion, photometric changes (train/scene.py)", "licence": "ours (MIT)"},
]


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
