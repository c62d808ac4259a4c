"""The community webdataset tars (``source="webdataset"``): ``train_subjAA_*.tar``,
``val_subjAA_*.tar`` and ``test_subjAA_*.tar`` found anywhere under the root, each sample a
``coco73k.npy`` (its 0-based 73k id) and an ``nsdgeneral.npy`` (its repeats, (3, V), already
preprocessed and in the raw source's voxel order).

Training rows are the train and val samples, ascending 73k id, with up to three repeats
(missing ones filled as the raw source fills them; a second sample of the same image is
dropped and counted); test rows the mean over a test image's repeats. The voxel labels come from
the ROI files of the raw layout when present (the ``nsdgeneral`` mask must have as many voxels
as the samples), else every voxel is "Other" with a warning.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from functools import cached_property
from pathlib import Path

import numpy as np

from .atlas import nsdgeneral, roi_files, voxel_areas, warn_roi_missing
from .cache import SubjectArrays, count_dict, fill_repeats
from .files import N_IMAGES, N_REPEATS, ROI_ATLASES, ctab_path, roi_path, stamp

_TAR_RE = re.compile(r"^(train|val|test)_subj(\d\d)_.*\.tar$")


class WebdatasetSource:
    """The webdataset tars found under ``root`` (see the module docstring)."""

    name = "webdataset"

    def __init__(self, root: Path):
        self.root = root

    def check(self, subjects) -> None:
        """Fail at once when a subject's train or test tars are missing."""
        for s in subjects:
            self.tars(s)

    @cached_property
    def _tar_index(self) -> dict[tuple[int, str], list[Path]]:
        index: dict[tuple[int, str], list[Path]] = {}
        for p in sorted(self.root.rglob("*_subj*_*.tar")):
            m = _TAR_RE.match(p.name)
            if m and p.is_file():
                index.setdefault((int(m.group(2)), m.group(1)), []).append(p)
        return index

    def tars(self, subject: int) -> dict[str, list[Path]]:
        """The subject's tars by split ("train", "val", "test"); train and test are required."""
        tars = {split: self._tar_index.get((subject, split), []) for split in ("train", "val", "test")}
        for split in ("train", "test"):
            if not tars[split]:
                raise FileNotFoundError(
                    f"subject {subject}'s webdataset {split} tars ({split}_subj{subject:02d}_*.tar) were not "
                    f"found: searched {self.root} and its subfolders"
                )
        return tars

    def input_files(self, subject: int) -> dict[str, list[int]]:
        """Every file the subject's arrays are computed from: relative path -> [size, mtime in ns]."""
        out = {}
        for paths in self.tars(subject).values():
            for p in paths:
                out[p.relative_to(self.root).as_posix()] = stamp(p)
        out.update({r: stamp(self.root / r) for r in roi_files(self.root, subject)})
        return out

    def seen_test_ids(self, subject: int) -> np.ndarray:
        """Every image of the subject's test tars, ascending."""
        ids = [sample_id(s, p) for p in self.tars(subject)["test"] for _, s in tar_samples(p, ("coco73k.npy",))]
        return np.unique(np.asarray(ids, dtype=np.int64))

    def build(self, subject: int) -> SubjectArrays:
        """Read every sample of the subject's tars."""
        tars = self.tars(subject)
        train_tars = tars["train"] + tars["val"]
        # Pass 1: image ids only, so that the voxels go straight to their row.
        train_ids_all = [sample_id(s, p) for p in train_tars for _, s in tar_samples(p, ("coco73k.npy",))]
        test_ids_all = [sample_id(s, p) for p in tars["test"] for _, s in tar_samples(p, ("coco73k.npy",))]
        for i in train_ids_all + test_ids_all:
            if not 0 <= i < N_IMAGES:
                raise ValueError(f"subject {subject}'s webdataset holds coco73k id {i}; expected 0..{N_IMAGES - 1}")
        train_ids, test_ids = np.unique(train_ids_all), np.unique(test_ids_all)
        train = None
        counts = np.zeros(len(train_ids), dtype=np.int64)
        test_sum, test_n = None, np.zeros(len(test_ids), dtype=np.int64)
        V = None
        duplicates = 0
        for split_tars, is_train in ((train_tars, True), (tars["test"], False)):
            for p in split_tars:
                for key, s in tar_samples(p, ("coco73k.npy", "nsdgeneral.npy")):
                    if "nsdgeneral.npy" not in s:
                        raise ValueError(f"{p}: sample {key!r} has no nsdgeneral.npy")
                    vox = np.asarray(s["nsdgeneral.npy"])
                    vox = vox[None] if vox.ndim == 1 else vox
                    if vox.ndim != 2 or not 1 <= vox.shape[0] <= N_REPEATS:
                        raise ValueError(f"{p}: sample {key!r} has nsdgeneral.npy of shape {vox.shape}; expected (3, V)")
                    if V is None:
                        V = vox.shape[1]
                        train = np.zeros((len(train_ids), N_REPEATS, V), dtype=np.float16)
                        test_sum = np.zeros((len(test_ids), V), dtype=np.float32)
                    elif vox.shape[1] != V:
                        raise ValueError(f"{p}: sample {key!r} has {vox.shape[1]} voxels; earlier samples had {V}")
                    i = sample_id(s, p)
                    if is_train:
                        r = int(np.searchsorted(train_ids, i))
                        if counts[r]:
                            duplicates += 1
                            continue
                        train[r, : len(vox)] = vox
                        counts[r] = len(vox)
                    else:
                        r = int(np.searchsorted(test_ids, i))
                        test_sum[r] += vox.sum(0)
                        test_n[r] += len(vox)
        if V is None:
            raise ValueError(f"subject {subject}'s webdataset tars hold no samples: {train_tars + tars['test']}")
        filled = fill_repeats(train, counts)
        area, roi_meta = self._areas(subject, V)
        meta = {
            "source": "webdataset",
            "tars": [p.relative_to(self.root).as_posix() for p in train_tars + tars["test"]],
            "train_repeat_counts": count_dict(counts),
            "filled_repeats": filled,
            "duplicate_train_samples": duplicates,
            **roi_meta,
        }
        test = (test_sum / test_n[:, None]).astype(np.float32)
        return SubjectArrays(train, train_ids, test_ids, test, test_n, area, meta)

    def _areas(self, subject: int, V: int) -> tuple[np.ndarray, dict]:
        """Voxel areas from the raw layout's ROI files, or all "Other" when there is no mask."""
        rel = roi_path(subject, "nsdgeneral")
        if not (self.root / rel).is_file():
            missing = [str(self.root / rel)] + [
                str(self.root / r) for n in ROI_ATLASES for r in (roi_path(subject, n), ctab_path(subject, n))
            ]
            warn_roi_missing(subject, missing)
            return np.full(V, "Other"), {"roi_overlap_voxels": 0, "roi_unlabelled_values": 0, "roi_missing": missing}
        mask = nsdgeneral(self.root, subject)
        if int(mask.sum()) != V:
            raise ValueError(
                f"subject {subject}'s webdataset samples have {V} voxels but the nsdgeneral mask "
                f"{self.root / rel} (NSD: {rel}) has {int(mask.sum())}"
            )
        return voxel_areas(self.root, subject, mask)


def tar_samples(path: Path, wanted: tuple[str, ...]):
    """Yield (key, {extension: array}) for each sample of a webdataset tar, loading only ``wanted``
    .npy members (a sample's files are consecutive, named ``<key>.<extension>``)."""
    try:
        tf = tarfile.open(path)  # noqa: SIM115 (closed by the with below; open errors get the path)
    except (tarfile.TarError, OSError) as e:
        raise ValueError(f"cannot read the webdataset tar {path}: {e}") from e
    with tf:
        key, sample = None, {}
        for m in tf:
            if not m.isfile():
                continue
            folder, base = posixpath.split(m.name)
            if "." not in base:
                continue
            stem, ext = base.split(".", 1)
            k = posixpath.join(folder, stem)
            if k != key:
                if key is not None:
                    yield key, sample
                key, sample = k, {}
            if ext in wanted:
                try:
                    sample[ext] = np.load(io.BytesIO(tf.extractfile(m).read()), allow_pickle=False)
                except ValueError as e:
                    raise ValueError(f"{path}: member {m.name} is not a .npy array: {e}") from e
        if key is not None:
            yield key, sample


def sample_id(sample: dict, path: Path) -> int:
    """The 73k id of a webdataset sample (``coco73k.npy`` holds one integer)."""
    if "coco73k.npy" not in sample:
        raise ValueError(f"{path}: a sample has no coco73k.npy")
    a = np.asarray(sample["coco73k.npy"]).reshape(-1)
    if a.size != 1 or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{path}: coco73k.npy holds {a.size} values of {a.dtype}; expected one 73k id")
    return int(a[0])
