"""NSD's own files (``source="raw"``): the betas HDF5 of each session, the experimental design
and the ROI files, preprocessed into one subject's arrays.

Preprocessing
-------------
* Betas are stored as int16 times 300; they are divided by 300 (percent signal change). h5py reads
  a session as (750 trials, Z, Y, X).
* Voxels are those of the ``nsdgeneral`` mask (value > 0), in NumPy C-order of the mask array as
  nibabel returns it, (X, Y, Z): a session's betas are transposed to (trials, X, Y, Z) and indexed
  by the mask. This is the order of the community webdataset (and of UMBRAE/MindEye).
* Every voxel is z-scored within each session, over that session's 750 trials, before anything
  else (a voxel constant within a session gets 0 there).
* The sessions used are those present, contiguous from ``betas_session01`` (NSD released fewer
  sessions than were run). Global trial ``t = (session - 1) * 750 + j`` shows the 0-based 73k image
  ``subjectim[subject - 1, masterordering[t] - 1] - 1``; ``masterordering[t] <= 1000`` marks one of
  the 1000 shared images.
* Training rows: the subject's non-shared images, ascending 73k id, with the repeats kept apart in
  the order they were shown: ``train_voxels`` is (n_train, 3, V). An image seen fewer than 3 times in
  the sessions present has its missing repeats filled by cycling through the repeats it has
  (one repeat ``a`` gives ``a, a, a``; two ``a, b`` give ``a, b, a``); ``meta`` counts them.
* Test rows: every shared image the subject saw in the sessions present, ascending 73k id, each
  the mean over the repeats available (:class:`~otnsd.data.nsd.NSD` keeps those that every subject
  of the dataset saw).

``train_voxels`` are float16 (a subject's full NSD betas take about 1 GB so) and the test rows
float32. Building a subject needs about its betas at float16 plus one session at float32.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .atlas import nsdgeneral, roi_files, voxel_areas
from .cache import SubjectArrays, count_dict, fill_repeats
from .files import (
    BETAS_SCALE,
    EXPDESIGN,
    MAX_SESSIONS,
    N_IMAGES,
    N_REPEATS,
    N_SHARED,
    N_SUBJECT_IMAGES,
    N_TRIALS,
    TRIALS_PER_SESSION,
    betas_path,
    open_h5,
    require,
    roi_path,
    stamp,
)

_READ_BLOCK = 50  # trials per read: bounds the int16 buffer of a session read
_ZSCORE_COLUMNS = 2048  # voxels per z-scoring step: bounds the float64 temporaries


@dataclass(frozen=True)
class _Design:
    masterordering: np.ndarray  # (30000,) 1-based into a subject's 10000 images
    subjectim: np.ndarray  # (8, 10000) 1-based 73k ids
    sharedix: np.ndarray  # (1000,) 1-based 73k ids


class RawSource:
    """NSD's own files under ``root`` (see the module docstring for the preprocessing)."""

    name = "raw"

    def __init__(self, root: Path):
        self.root = root
        self._session_memo: dict[int, tuple[int, ...]] = {}

    def check(self, subjects) -> None:
        """Fail at once on the files every subject needs; the rest is read on first use."""
        require(self.root, EXPDESIGN, "the experimental design")
        for s in subjects:
            require(self.root, roi_path(s, "nsdgeneral"), f"subject {s}'s nsdgeneral mask")
            self.sessions(s)

    def sessions(self, subject: int) -> tuple[int, ...]:
        """Sessions present, contiguous from 01."""
        if subject in self._session_memo:
            return self._session_memo[subject]
        found = []
        for n in range(1, MAX_SESSIONS + 1):
            if not (self.root / betas_path(subject, n)).is_file():
                break
            found.append(n)
        if not found:
            rel = betas_path(subject, 1)
            hint = ""
            if (self.root / rel).with_suffix(".nii.gz").is_file():
                hint = " (only the .nii.gz betas are there; the HDF5 ones are read)"
            raise FileNotFoundError(
                f"subject {subject}'s betas, session 01 (NSD: {rel}) were not found: looked for "
                f"{self.root / rel}{hint}"
            )
        later = [n for n in range(len(found) + 2, MAX_SESSIONS + 1) if (self.root / betas_path(subject, n)).is_file()]
        if later:
            warnings.warn(
                f"subject {subject}: betas sessions {later} are ignored because session "
                f"{len(found) + 1:02d} is missing (sessions are used contiguously from 01)",
                UserWarning,
                stacklevel=4,
            )
        self._session_memo[subject] = tuple(found)
        return self._session_memo[subject]

    def input_files(self, subject: int) -> dict[str, list[int]]:
        """Every file the subject's arrays are computed from: relative path -> [size, mtime in ns]."""
        rels = [betas_path(subject, n) for n in self.sessions(subject)] + roi_files(self.root, subject) + [EXPDESIGN]
        return {r: stamp(self.root / r) for r in rels}

    def seen_test_ids(self, subject: int) -> np.ndarray:
        """Every shared image the subject saw in the sessions present, ascending."""
        ids, shared = self._trial_images(subject)
        return np.unique(ids[shared])

    def build(self, subject: int) -> SubjectArrays:
        """Read and preprocess every session of the subject."""
        mask = nsdgeneral(self.root, subject)
        V = int(mask.sum())
        area, roi_meta = voxel_areas(self.root, subject, mask)
        ids, shared = self._trial_images(subject)
        train_ids = np.unique(ids[~shared])
        test_ids = np.unique(ids[shared])
        # Slot of every trial: (row, repeat) among training images, or row among test images.
        row = np.where(shared, np.searchsorted(test_ids, ids), np.searchsorted(train_ids, ids))
        rep = np.zeros(len(ids), dtype=np.int64)
        seen: dict[int, int] = {}
        for t, i in enumerate(ids.tolist()):
            rep[t] = seen.get(i, 0)
            seen[i] = rep[t] + 1
        is_train = ~shared & (rep < N_REPEATS)
        extra = int((~shared & (rep >= N_REPEATS)).sum())

        train = np.zeros((len(train_ids), N_REPEATS, V), dtype=np.float16)
        test_sum = np.zeros((len(test_ids), V), dtype=np.float32)
        test_n = np.zeros(len(test_ids), dtype=np.int64)
        constant = 0
        for k, session in enumerate(self.sessions(subject)):
            z, n_const = self._read_session(subject, session, mask)
            constant += n_const
            t = slice(k * TRIALS_PER_SESSION, (k + 1) * TRIALS_PER_SESSION)
            # Row by row: a fancy-indexed copy of the session would double its memory.
            for j, trial in enumerate(range(t.start, t.stop)):
                if is_train[trial]:
                    train[row[trial], rep[trial]] = z[j]
                elif shared[trial]:
                    test_sum[row[trial]] += z[j]
                    test_n[row[trial]] += 1
            del z
        counts = np.array([seen[int(i)] for i in train_ids], dtype=np.int64).clip(max=N_REPEATS)
        filled = fill_repeats(train, counts)
        meta = {
            "source": "raw",
            "sessions": len(self.sessions(subject)),
            "trials": len(ids),
            "train_repeat_counts": count_dict(counts),
            "filled_repeats": filled,
            "extra_repeats_dropped": extra,
            "constant_voxel_sessions": constant,
            **roi_meta,
        }
        test = (test_sum / test_n[:, None]).astype(np.float32)
        return SubjectArrays(train, train_ids, test_ids, test, test_n, area, meta)

    # ------------------------------------------------------------------------------ design
    @cached_property
    def _design(self) -> _Design:
        import scipy.io

        path = require(self.root, EXPDESIGN, "the experimental design")
        try:
            mat = scipy.io.loadmat(path)
        except Exception as e:  # scipy raises several types for a bad file
            raise ValueError(f"cannot read the experimental design {path} (NSD: {EXPDESIGN}): {e}") from e
        for key in ("masterordering", "subjectim", "sharedix"):
            if key not in mat:
                raise ValueError(f"{path} (NSD: {EXPDESIGN}) has no variable {key!r}")

        def vector(key, n, hi):
            a = np.asarray(mat[key])
            if a.size != n or (a.ndim == 2 and 1 not in a.shape) or a.ndim > 2:
                raise ValueError(f"{path} (NSD: {EXPDESIGN}): {key} has shape {a.shape}; expected (1, {n})")
            a = a.reshape(-1).astype(np.int64)
            if a.min() < 1 or a.max() > hi:
                raise ValueError(f"{path} (NSD: {EXPDESIGN}): {key} must hold 1-based indices in 1..{hi}")
            return a

        mo = vector("masterordering", N_TRIALS, N_SUBJECT_IMAGES)
        shared = vector("sharedix", N_SHARED, N_IMAGES)
        si = np.asarray(mat["subjectim"])
        if si.shape != (8, N_SUBJECT_IMAGES):
            raise ValueError(f"{path} (NSD: {EXPDESIGN}): subjectim has shape {si.shape}; expected (8, {N_SUBJECT_IMAGES})")
        si = si.astype(np.int64)
        if si.min() < 1 or si.max() > N_IMAGES:
            raise ValueError(f"{path} (NSD: {EXPDESIGN}): subjectim must hold 1-based 73k ids in 1..{N_IMAGES}")
        if any(set(row[:N_SHARED]) != set(shared) for row in si):
            warnings.warn(
                f"{path}: the first {N_SHARED} images of some subject differ from sharedix; the test "
                "set follows masterordering <= 1000",
                UserWarning,
                stacklevel=2,
            )
        return _Design(mo, si, shared)

    def _trial_images(self, subject: int) -> tuple[np.ndarray, np.ndarray]:
        """0-based 73k id and shared flag of each trial of the sessions present."""
        n = len(self.sessions(subject)) * TRIALS_PER_SESSION
        d = self._design
        mo = d.masterordering[:n]
        return d.subjectim[subject - 1, mo - 1] - 1, mo <= N_SHARED

    # ------------------------------------------------------------------------------ betas
    def _read_session(self, subject: int, session: int, mask: np.ndarray) -> tuple[np.ndarray, int]:
        """One session's betas inside the mask, /300 and z-scored per voxel: (750, V) float32."""
        rel = betas_path(subject, session)
        path = require(self.root, rel, f"subject {subject}'s betas, session {session:02d}")
        X, Y, Z = mask.shape
        expected = (TRIALS_PER_SESSION, Z, Y, X)
        xs, ys, zs = (np.flatnonzero(mask.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
        x0, x1, y0, y1, z0, z1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1, zs[0], zs[-1] + 1
        box = mask[x0:x1, y0:y1, z0:z1]  # C-order inside the box = C-order of the whole mask
        out = np.empty((TRIALS_PER_SESSION, int(mask.sum())), dtype=np.float32)
        with open_h5(path, f"subject {subject}'s betas", f"NSD: {rel}") as f:
            if "betas" not in f:
                raise ValueError(f"{path} (NSD: {rel}) has no dataset 'betas'")
            ds = f["betas"]
            if ds.shape != expected:
                raise ValueError(
                    f"{path} (NSD: {rel}): betas have shape {ds.shape}; expected {expected}, i.e. "
                    f"{TRIALS_PER_SESSION} trials of the nsdgeneral volume (X, Y, Z) = {mask.shape} as "
                    "h5py reads it, (trials, Z, Y, X)"
                )
            if ds.dtype != np.int16:
                raise ValueError(f"{path} (NSD: {rel}): betas are {ds.dtype}; expected int16 scaled by {BETAS_SCALE:g}")
            for i in range(0, TRIALS_PER_SESSION, _READ_BLOCK):
                block = ds[i : i + _READ_BLOCK, z0:z1, y0:y1, x0:x1]
                out[i : i + len(block)] = block.transpose(0, 3, 2, 1)[:, box]
        out /= BETAS_SCALE
        constant = 0
        for c in range(0, out.shape[1], _ZSCORE_COLUMNS):  # float64 statistics, a few columns at a time
            cols = out[:, c : c + _ZSCORE_COLUMNS]
            mean = cols.mean(0, dtype=np.float64)
            std = cols.std(0, dtype=np.float64)
            ok = std > 1e-6  # int16 / 300 data vary by >= 1e-4 when they vary at all; guards rounding
            cols -= mean.astype(np.float32)
            cols[:, ok] /= std[ok].astype(np.float32)
            cols[:, ~ok] = 0.0
            constant += int((~ok).sum())
        return out, constant
