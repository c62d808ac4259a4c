"""A tiny NSD copy in NSD's exact file formats, for testing :class:`otnsd.data.NSD`.

Two subjects on a 6 x 5 x 4 (X, Y, Z) volume: subject 1 has two betas sessions, subject 2 one.
Every value is a known function of its position so that tests can recompute what the loader must
return (see :func:`expected_session`). The first 1500 trials follow :data:`PLAN`; the rest of the
design is filler that no betas cover.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import scipy.io

SHAPE = (6, 5, 4)  # X, Y, Z
SESSIONS = {1: 2, 2: 1}
TRIALS = 750

# First 1500 trials: (1-based index into the subject's 10000 images, 0-based trials showing it).
# Indices <= 1000 are shared images.
PLAN = {
    1: (0, 100, 800),  # shared, 3 times (subject 2, one session: twice)
    2: (1, 900),  # shared, twice (subject 2: once)
    3: (2,),  # shared, once
    4: (760,),  # shared, only in session 2: not seen by subject 2
    5: (770, 780, 790),  # shared, only in session 2
    1000: (6, 7),  # the last shared index, twice in a row
    1001: (3, 200, 1000),  # 3 times (subject 2: twice)
    1002: (4, 1100),  # twice (subject 2: once)
    1003: (5,),  # once
    1004: (1200,),  # once, session 2 only
}
CONSTANT_VOXEL = (0, 0, 0)  # constant over subject 1's session 2: its z-score there is 0

# ROI atlases: label tables and the labelled voxels (X, Y, Z).
CTABS = {
    "prf-visualrois": ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
    "floc-bodies": ["EBA", "FBA-1", "FBA-2", "mTL-bodies"],
    "floc-faces": ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"],
    "floc-places": ["OPA", "PPA", "RSC"],
    "floc-words": ["OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"],
}
ROI_LABELS = {  # atlas -> {voxel: label index}
    "prf-visualrois": {(0, 0, 0): 1, (2, 0, 0): 2, (2, 1, 0): 7, (3, 3, 2): 1},
    "floc-bodies": {(0, 1, 1): 1, (4, 2, 0): 3},
    "floc-faces": {(3, 3, 2): 1, (1, 3, 2): 5, (2, 2, 3): 5, (5, 0, 1): 2},
    "floc-places": {(0, 1, 1): 2, (2, 2, 3): 1, (4, 4, 2): 3, (1, 0, 0): 2},  # (1, 0, 0): outside the mask
    "floc-words": {(3, 0, 3): 2, (5, 2, 1): 9},  # 9: not in the table
}
# What the loader must make of them (every other mask voxel: "Other").
EXPECTED_AREAS = {
    (0, 0, 0): "V1v",
    (2, 0, 0): "V1d",
    (2, 1, 0): "hV4",
    (3, 3, 2): "V1v",  # also OFA: prf-visualrois comes first
    (0, 1, 1): "EBA",  # also PPA: floc-bodies comes before floc-places
    (4, 2, 0): "FBA-2",
    (5, 0, 1): "FFA-1",
    (2, 2, 3): "OPA",  # aTL-faces is no area, so OPA is the only claim
    (4, 4, 2): "RSC",
    (3, 0, 3): "VWFA-1",
}
EXPECTED_OVERLAP = 2
ROI_NAMES = tuple(CTABS)

EXPDESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
STIM_INFO = "nsddata/experiments/nsd/nsd_stim_info_merged.csv"
STIMULI = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
CAPTIONS = {"train2017": "coco/annotations/captions_train2017.json", "val2017": "coco/annotations/captions_val2017.json"}


def betas_rel(subject: int, session: int) -> str:
    return (
        f"nsddata_betas/ppdata/subj{subject:02d}/func1pt8mm/betas_fithrf_GLMdenoise_RR/"
        f"betas_session{session:02d}.hdf5"
    )


def roi_rel(subject: int, name: str) -> str:
    return f"nsddata/ppdata/subj{subject:02d}/func1pt8mm/roi/{name}.nii.gz"


def ctab_rel(subject: int, name: str) -> str:
    return f"nsddata/freesurfer/subj{subject:02d}/label/{name}.mgz.ctab"


def mask_values(subject: int) -> np.ndarray:
    """nsdgeneral as NSD stores it: 1 inside, 0 outside, -1 outside the brain; (X, Y, Z)."""
    x, y, z = np.indices(SHAPE)
    inside = (x + y + z) % 4 != 1 if subject == 1 else (x * y + z) % 3 != 0
    vals = np.where(inside, 1, 0).astype(np.int16)
    vals[(~inside) & (x == 5)] = -1
    return vals


def mask(subject: int) -> np.ndarray:
    return mask_values(subject) > 0


def raw_betas(subject: int, session: int) -> np.ndarray:
    """int16 betas of one session, (750, X, Y, Z): a pattern that differs across voxels."""
    t = (session - 1) * TRIALS + np.arange(TRIALS)[:, None, None, None]
    x, y, z = np.indices(SHAPE)
    code = 100 * x + 10 * y + z
    vals = (t * (code % 13 + 1) * 37 + code * 101 + subject * 7) % 4001 - 2000
    if subject == 1 and session == 2:
        vals[(slice(None), *CONSTANT_VOXEL)] = 500
    return vals.astype(np.int16)


def expected_session(subject: int, session: int) -> np.ndarray:
    """What the loader must compute from one session: betas / 300 z-scored per voxel over the
    session's trials (0 where constant), (750, X, Y, Z) float64."""
    raw = raw_betas(subject, session)
    b = raw.astype(np.float64) / 300.0
    mu, sd = b.mean(0), b.std(0)
    varies = (raw != raw[:1]).any(0)
    return np.where(varies, (b - mu) / np.where(varies, sd, 1.0), 0.0)


def design() -> dict[str, np.ndarray]:
    """nsd_expdesign.mat contents: masterordering (1, 30000), subjectim (8, 10000), sharedix (1, 1000)."""
    rng = np.random.default_rng(0)
    sharedix = 1 + 73 * np.arange(1000)  # 1-based 73k ids
    others = np.setdiff1d(np.arange(1, 73001), sharedix)
    rng.shuffle(others)
    shared_order = rng.permutation(sharedix)  # the same for every subject, not sorted
    subjectim = np.hstack([np.tile(shared_order, (8, 1)), others.reshape(8, 9000)])
    mo = np.zeros(30000, dtype=np.int64)
    for idx, trials in PLAN.items():
        mo[list(trials)] = idx
    free = np.flatnonzero(mo[:1500] == 0)
    rng.shuffle(free)
    mo[free] = 2000 + np.arange(len(free)) // 3  # filler images, about 3 times each
    mo[1500:] = 1 + np.arange(28500) % 10000
    return {"masterordering": mo[None, :], "subjectim": subjectim, "sharedix": sharedix[None, :]}


def trial_ids(subject: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based 73k id and shared flag of each trial covered by the subject's betas."""
    d = design()
    mo = d["masterordering"][0, : SESSIONS[subject] * TRIALS]
    return d["subjectim"][subject - 1, mo - 1] - 1, mo <= 1000


def image_id(subject: int, index: int) -> int:
    """0-based 73k id of the subject's image ``index`` (1-based, as in masterordering)."""
    return int(design()["subjectim"][subject - 1, index - 1] - 1)


def coco_id(nsd_id: int) -> int:
    return 500000 + 3 * int(nsd_id)


def coco_split(nsd_id: int) -> str:
    return "train2017" if nsd_id % 2 == 0 else "val2017"


def caption_list(nsd_id: int) -> list[str]:
    n = 6 if nsd_id % 5 == 0 else 5
    return [f"caption {k} of coco {coco_id(nsd_id)}" for k in range(n)]


def image_pixels(nsd_id: int) -> np.ndarray:
    x = np.arange(425, dtype=np.int64)
    img = (nsd_id + x[:, None, None] + 2 * x[None, :, None] + 50 * np.arange(3)) % 256
    return img.astype(np.uint8)


@dataclass
class Info:
    root: Path
    caption_ids: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _nifti(path: Path, vol: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))


def write_rois(root: Path, subject: int) -> None:
    for name, labels in CTABS.items():
        vol = np.zeros(SHAPE, dtype=np.int16)
        vol[mask_values(subject) < 0] = -1  # NSD marks outside the brain with -1
        for voxel, value in ROI_LABELS[name].items():
            vol[voxel] = value
        _nifti(root / roi_rel(subject, name), vol)
        lines = ["0\tUnknown"] + [f"{i}\t{n}" for i, n in enumerate(labels, 1)]
        _write(root / ctab_rel(subject, name), "\n".join(lines) + "\n")


def write_nsd(root: Path) -> Info:
    """Write the tiny NSD under ``root``; returns the ids that have captions and images."""
    root = Path(root)
    for s, n_sessions in SESSIONS.items():
        _nifti(root / roi_rel(s, "nsdgeneral"), mask_values(s))
        write_rois(root, s)
        for session in range(1, n_sessions + 1):
            path = root / betas_rel(s, session)
            path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(path, "w") as f:
                # NSD stores X x Y x Z x 750, which h5py reads as (750, Z, Y, X)
                f.create_dataset("betas", data=raw_betas(s, session).transpose(0, 3, 2, 1), compression="gzip")
    d = design()
    (root / EXPDESIGN).parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / EXPDESIGN, {k: v.astype(np.float64) for k, v in d.items()}, do_compression=True)

    used = set((d["sharedix"][0] - 1).tolist())
    for s in SESSIONS:
        used |= set(trial_ids(s)[0].tolist())
    header = ",cocoId,cocoSplit,cropBox,loss,nsdId,flagged,BOLD5000,shared1000"
    rows = [
        f'{k},{coco_id(i)},{coco_split(i)},"(0, 0, 0.1, 0.1)",0.0,{i},False,False,{i % 73 == 0}'
        for k, i in enumerate(sorted(used))
    ]
    _write(root / STIM_INFO, "\n".join([header, *rows]) + "\n")

    caption_ids = sorted({image_id(1, 1), image_id(1, 2), image_id(1, 3), image_id(1, 1001), image_id(2, 1002)})
    for split, rel in CAPTIONS.items():
        ids = [i for i in caption_ids if coco_split(i) == split]
        anns, k = [], 0
        for j in range(6):  # interleaved over images, as in COCO's files
            for i in ids:
                caps = caption_list(i)
                if j < len(caps):
                    anns.append({"image_id": coco_id(i), "id": k, "caption": caps[j]})
                    k += 1
        blob = {"info": {}, "licenses": [], "images": [{"id": coco_id(i)} for i in ids], "annotations": anns}
        _write(root / rel, json.dumps(blob))

    image_ids = caption_ids[:3]
    path = root / STIMULI
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "imgBrick", shape=(73000, 425, 425, 3), dtype=np.uint8, chunks=(1, 425, 425, 3),
            compression="gzip", fillvalue=0,
        )
        for i in image_ids:
            ds[i] = image_pixels(i)
    return Info(root=root, caption_ids=caption_ids, image_ids=image_ids)


def write_features(path: Path, image_ids, T: int = 4, D: int = 8) -> np.ndarray:
    """Features file as a CLIP extractor writes it; returns the features, in ``image_ids`` order."""
    ids = np.asarray(image_ids, dtype=np.int64)
    feats = (np.arange(len(ids) * T * D).reshape(len(ids), T, D) % 97 / 8 + ids[:, None, None] % 7).astype(np.float16)
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=feats)
        f.create_dataset("image_ids", data=ids)
    return feats.astype(np.float32)


# ------------------------------------------------------------------------------------ webdataset
def wds_voxels(nsd_id: int, n_voxels: int) -> np.ndarray:
    """(3, V) float16 repeats of one webdataset sample (multiples of 1/4, exact in float16)."""
    v = np.arange(n_voxels)
    r = np.arange(3)[:, None]
    return (((nsd_id * 7 + r * 3 + v) % 17 - 8) / 4).astype(np.float16)


WDS_SPLITS = {  # subject -> split -> 0-based 73k ids
    1: {"train": [70001, 120, 5000, 33], "val": [61000, 7], "test": [73, 146, 219, 292]},
    2: {"train": [999, 40000], "val": [12], "test": [292, 146, 73, 365]},
}


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a))
    return buf.getvalue()


def write_webdataset(root: Path) -> None:
    """Community-style tars: ``<split>/<split>_subjAA_0.tar``, samples ``<key>.{nsdgeneral.npy,
    coco73k.npy,trial.npy,jpg}``."""
    key = 0
    for s, splits in WDS_SPLITS.items():
        V = int(mask(s).sum())
        for split, ids in splits.items():
            path = Path(root) / "webdataset_avg_split" / split / f"{split}_subj{s:02d}_0.tar"
            path.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path, "w") as tf:
                for i in ids:
                    members = {
                        "nsdgeneral.npy": _npy(wds_voxels(i, V)),
                        "coco73k.npy": _npy(np.array([i])),
                        "trial.npy": _npy(np.array([key, key + 1, key + 2])),
                        "jpg": b"\xff\xd8\xff\xd9",
                    }
                    for ext, data in members.items():
                        ti = tarfile.TarInfo(f"sample{key:09d}.{ext}")
                        ti.size = len(data)
                        tf.addfile(ti, io.BytesIO(data))
                    key += 1
