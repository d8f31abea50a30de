"""Real video for the score stage: pedestrians in ``vtest.avi`` with boxes from background subtraction,
confirmed by a teacher tracker (licence below; the shared benchmark sequences are never used).

| source | used as | licence |
|---|---|---|
| ``vtest.avi`` (795 frames, 768x576, 10 fps, static camera, people walking) from Debian's ``opencv-doc`` 4.6.0+dfsg-12 (``apt-get download opencv-doc=4.6.0+dfsg-12``) | targets and look-alike negatives (other people) | the package's copyright file: Apache-2.0 AND BSD-3-Clause (OpenCV) |
| FEAR-XS (``../shared/data/peers/fear_xs``) | teacher: keeps a track only while it agrees with the boxes | MIT |

Boxes: OpenCV's MOG2 background subtractor finds the moving people; detections of one person are
linked frame to frame (mutual best IoU, no competing detection), and a track is cut at the first
frame where FEAR-XS, started on the track's first box, disagrees with it (IoU < ``AGREE_IOU``), so
a track never jumps to another person. Everything is deterministic and cached under ``<cache>/vtest``.
"""
from __future__ import annotations

import hashlib
import io
import json
import lzma
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mixformerv2_cpu.sources import VideoFileSource

DEB = "opencv-doc_4.6.0+dfsg-12_all.deb"
MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
DATA_SOURCE = {"source": f"Debian opencv-doc 4.6.0+dfsg-12, vtest.avi (sha256 {SHA256[:12]}...), "
                         "boxes: MOG2 detections confirmed by FEAR-XS (MIT)",
               "licence": "Apache-2.0 AND BSD-3-Clause (package copyright)"}
MIN_AREA, ASPECT = 300, (1.4, 5.0)  # one upright person: h/w in this range
WARMUP = 40                          # frames before MOG2's background is trusted
LINK_IOU, COMPETE_IOU, AGREE_IOU = 0.4, 0.2, 0.5
MIN_TRACK = 8
LABELS = ("detections", "mean")  # what the track boxes are (load_tracks)


@dataclass
class Tracks:
    """frames (N,H,W,3) uint8 BGR; detections[f]: (k,4) xywh of every person found in frame f;
    tracks: list of (start frame, (n,4) xywh boxes of one person in frames start..start+n-1)."""

    frames: np.ndarray
    detections: list[np.ndarray]
    tracks: list[tuple[int, np.ndarray]]


def _deb_member(deb: Path, member: str) -> bytes:
    """One file of a .deb (an ar archive holding data.tar.xz), read without dpkg."""
    data = deb.read_bytes()
    if data[:8] != b"!<arch>\n":
        raise ValueError(f"{deb} is not a Debian package")
    pos = 8
    while pos < len(data):
        name, size = data[pos:pos + 16].decode().strip().rstrip("/"), int(data[pos + 48:pos + 58])
        body = data[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            raw = lzma.decompress(body) if name.endswith(".xz") else body
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                return tar.extractfile(member).read()
        pos += 60 + size + (size % 2)
    raise ValueError(f"{deb} has no data.tar")


def vtest_video(cache: Path) -> Path:
    """``<cache>/vtest/vtest.avi``, extracted from the pinned package in ``cache`` and checked by sha256."""
    out = cache / "vtest" / "vtest.avi"
    if not out.is_file():
        deb = cache / DEB
        if not deb.is_file():
            raise FileNotFoundError(f"no {DEB} in {cache}: run (cd {cache} && apt-get download opencv-doc=4.6.0+dfsg-12)")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(_deb_member(deb, MEMBER))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{out}: sha256 {digest}, expected {SHA256}")
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,4) x (m,4) xywh -> (n,m) IoU."""
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    return inter / (a[:, 2:].prod(1)[:, None] + b[:, 2:].prod(1)[None] - inter + 1e-9)


def detect_people(frames: np.ndarray) -> list[np.ndarray]:
    """Per frame (k,4) xywh boxes of moving upright blobs (MOG2, shadows dropped); empty before WARMUP."""
    bg = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25, detectShadows=True)
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    closing = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 15))
    out = []
    for i, f in enumerate(frames):
        mask = (bg.apply(f) == 255).astype(np.uint8) * 255
        boxes = np.zeros((0, 4), np.float64)
        if i >= WARMUP:
            mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, opening), cv2.MORPH_CLOSE, closing)
            _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            keep = [s[:4] for s in stats[1:] if s[4] >= MIN_AREA and ASPECT[0] <= s[3] / max(s[2], 1) <= ASPECT[1]]
            boxes = np.array(keep, np.float64).reshape(-1, 4)
        out.append(boxes)
    return out


def link(detections: list[np.ndarray]) -> list[tuple[int, np.ndarray]]:
    """Chain detections of consecutive frames into tracks: a link needs mutual best IoU >= LINK_IOU
    and no other detection overlapping either box (IoU >= COMPETE_IOU: people crossing or merging)."""
    tracks, open_ = [], {}  # open_: detection index in the previous frame -> [start, boxes]
    for f in range(len(detections)):
        cur, prev = detections[f], detections[f - 1] if f else np.zeros((0, 4))
        nxt = {}
        if len(cur) and len(prev):
            iou = _iou(prev, cur)
            for j in range(len(cur)):
                i = int(iou[:, j].argmax())
                ok = iou[i, j] >= LINK_IOU and int(iou[i].argmax()) == j
                ok = ok and (np.sort(iou[:, j])[-2:-1] < COMPETE_IOU).all() and (np.sort(iou[i])[-2:-1] < COMPETE_IOU).all()
                if ok and i in open_:
                    nxt[j] = open_.pop(i)
                    nxt[j][1].append(cur[j])
        tracks += list(open_.values())
        for j in range(len(cur)):
            nxt.setdefault(j, [f, [cur[j]]])
        open_ = nxt
    tracks += list(open_.values())
    return [(s, np.array(b)) for s, b in tracks if len(b) >= MIN_TRACK]


def confirm(frames: np.ndarray, tracks: list[tuple[int, np.ndarray]], teacher) -> list[tuple[int, np.ndarray]]:
    """Cut every track at the first frame where ``teacher`` (init on its first box) disagrees."""
    out = []
    for start, boxes in tracks:
        teacher.init(frames[start], tuple(boxes[0]))
        n = 1
        while n < len(boxes):
            _, got = teacher.update(frames[start + n])
            if _iou(np.array([got]), boxes[n:n + 1])[0, 0] < AGREE_IOU:
                break
            n += 1
        if n >= MIN_TRACK:
            out.append((start, boxes[:n]))
    return out


def teacher_boxes(frames: np.ndarray, tracks: list[tuple[int, np.ndarray]], teacher) -> list[np.ndarray]:
    """Per confirmed track, the teacher's own (n,4) xywh boxes: started on the track's first box and
    run through its frames (the boxes ``confirm`` compared; its first row is the first box)."""
    out = []
    for start, boxes in tracks:
        teacher.init(np.ascontiguousarray(frames[start]), tuple(boxes[0]))
        got = [boxes[0]] + [np.asarray(teacher.update(np.ascontiguousarray(frames[start + n]))[1], np.float64)
                            for n in range(1, len(boxes))]
        out.append(np.array(got, np.float64))
    return out


def load_tracks(cache: Path, peers: Path = Path("../shared/data/peers"), teacher_factory=None,
                labels: str = "detections") -> Tracks:
    """Frames, detections and confirmed tracks of vtest.avi, computed once and cached (the teacher,
    FEAR-XS from ``peers``, is needed only the first time).

    ``labels`` (one of LABELS): the track boxes are the detector's ("detections", MOG2 silhouettes), or
    "mean": per frame the mean of the detector's box and the teacher's (cached beside the tracks);
    the two agree at IoU >= AGREE_IOU by construction (median IoU 0.86), and their mean averages out
    part of their independent errors (MOG2 merges people and takes in shadows; FEAR-XS drifts to the torso)."""
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}, got {labels!r}")
    folder = cache / "vtest"
    frames_file, labels_file, teacher_file = folder / "frames.npy", folder / "tracks.json", folder / "teacher.json"
    if not frames_file.is_file():
        with VideoFileSource(vtest_video(cache)) as video:
            np.save(frames_file, np.stack([f.image for f in video]))
    frames = np.load(frames_file, mmap_mode="r")
    if teacher_factory is None:
        from mixformerv2_benchmarks.peers import make_peer
        teacher_factory = lambda: make_peer("fear_xs", threads=1, peers_dir=peers)  # noqa: E731
    if not labels_file.is_file():
        detections = detect_people(frames)
        tracks = confirm(frames, link(detections), teacher_factory())
        labels_file.write_text(json.dumps({"detections": [d.tolist() for d in detections],
                                           "tracks": [[s, b.tolist()] for s, b in tracks]}))
    data = json.loads(labels_file.read_text())
    tracks = [(s, np.array(b, np.float64)) for s, b in data["tracks"]]
    if labels == "mean":
        if not teacher_file.is_file():
            teacher_file.write_text(json.dumps([b.tolist() for b in teacher_boxes(frames, tracks, teacher_factory())]))
        taught = [np.array(b, np.float64).reshape(-1, 4) for b in json.loads(teacher_file.read_text())]
        tracks = [(s, 0.5 * (b + t)) for (s, b), t in zip(tracks, taught)]
    return Tracks(frames, [np.array(d, np.float64).reshape(-1, 4) for d in data["detections"]], tracks)


def _outside(box: np.ndarray, cx: float, cy: float, side: float) -> bool:
    """Whether xywh ``box`` lies wholly outside the square crop of ``side`` centred on (cx, cy)."""
    x, y, w, h = box
    return x > cx + side / 2 or x + w < cx - side / 2 or y > cy + side / 2 or y + h < cy - side / 2


def sample_crops(data: Tracks, rng: np.random.Generator, negative: bool, *, factor: float, max_gap: int = 60):
    """One real sample as crop boxes: (frame, box) of the template, of the online template and of the
    search frame's crop centre box, the target's box in the search frame, and the label. ``factor``:
    the search crop's side over sqrt(w*h) of the box it is centred on (negatives keep the target
    outside a crop of that side).

    Positive: the search crop is centred on the target's box jittered as a tracker's last estimate.
    Negative (a tracker sitting on a look-alike): centred on another person's detection in that frame
    with the whole target outside the crop, or, when there is none, on a random empty spot.
    """
    lengths = np.array([len(b) for _, b in data.tracks], np.float64)
    start, boxes = data.tracks[int(rng.choice(len(lengths), p=lengths / lengths.sum()))]
    i = int(rng.integers(0, len(boxes) - 1))
    j = int(rng.integers(i + 1, min(len(boxes), i + 1 + max_gap)))
    k = int(rng.integers(i, j)) if rng.random() < 0.75 else i
    target = boxes[j]
    s = math.sqrt(target[2] * target[3])
    jw, jh = target[2] * math.exp(rng.normal(0, 0.2)), target[3] * math.exp(rng.normal(0, 0.2))
    side = math.sqrt(jw * jh) * factor
    if not negative:
        reach = 0.8 if rng.random() < 0.8 else 1.8
        cx = target[0] + target[2] / 2 + rng.uniform(-reach, reach) * s
        cy = target[1] + target[3] / 2 + rng.uniform(-reach, reach) * s
    else:
        others = [d for d in data.detections[start + j] if _iou(d[None], target[None])[0, 0] < 0.1
                  and _outside(target, d[0] + d[2] / 2, d[1] + d[3] / 2, side)]
        h_img, w_img = data.frames.shape[1:3]
        if others and rng.random() < 0.85:
            d = others[int(rng.integers(len(others)))]
            cx, cy = d[0] + d[2] / 2 + rng.normal(0, 0.15) * s, d[1] + d[3] / 2 + rng.normal(0, 0.15) * s
        else:
            for _ in range(20):
                cx, cy = rng.uniform(0, w_img), rng.uniform(0, h_img)
                if _outside(target, cx, cy, side):
                    break
            else:
                return None
    crop_box = (cx - jw / 2, cy - jh / 2, jw, jh)
    return (start + i, boxes[i]), (start + k, boxes[k]), (start + j, crop_box), target
