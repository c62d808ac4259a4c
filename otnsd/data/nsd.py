r"""Real NSD behind the :class:`~otnsd.data.base.BrainImageDataset` API.

Nothing is downloaded: :class:`NSD` reads a local copy whose root is given as ``root=`` or by the
environment variable ``OTNSD_DATA``.

Layout expected under the root
------------------------------
``source="raw"`` reads NSD's own files (``AA`` the two-digit subject, ``NN`` the session)::

    nsddata_betas/ppdata/subjAA/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_sessionNN.hdf5
    nsddata/ppdata/subjAA/func1pt8mm/roi/nsdgeneral.nii.gz
    nsddata/ppdata/subjAA/func1pt8mm/roi/{prf-visualrois,floc-bodies,floc-faces,floc-places,floc-words}.nii.gz
    nsddata/freesurfer/subjAA/label/{prf-visualrois,floc-bodies,...}.mgz.ctab
    nsddata/experiments/nsd/nsd_expdesign.mat
    nsddata/experiments/nsd/nsd_stim_info_merged.csv        (captions only)
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5            (images only)
    coco/annotations/captions_{train,val}2017.json          (captions only)

``source="webdataset"`` reads the community webdataset tars found anywhere under the root
(``train_subjAA_*.tar``, ``val_subjAA_*.tar``, ``test_subjAA_*.tar``) and, when present, the ROI
files above for the voxel labels.

Preprocessing (``source="raw"``)
--------------------------------
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
* Test rows: the shared images seen at least once by *every* subject of ``subjects`` in the
  sessions present (982 images for subjects 1, 2, 5, 7 on NSD's release), ascending 73k id, each
  the mean over the repeats available. Shared images not seen by every subject are dropped.

``train_voxels`` are float16 (a subject's full NSD betas take about 1 GB so) and ``test_voxels``
float32. Loading a subject needs about its betas at float16 plus one session at float32; the result
is cached in ``cache_dir`` and the next load reads only the cache.

Area labels: each voxel takes the area of :data:`~otnsd.data.rois.AREAS` it falls in, in the
atlases ``prf-visualrois``, ``floc-bodies``, ``floc-faces``, ``floc-places``, ``floc-words`` (label
numbers from the ``.ctab`` files, values < 1 outside). Labels outside ``AREAS`` (e.g. aTL-faces)
claim nothing; a voxel claimed by two atlases takes the first in that order (``meta`` counts them);
a voxel claimed by none is "Other".

Image ids everywhere are NSD's 0-based 73k ids.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
import re
import tarfile
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..features import FeatureFile, read_rows
from ..paths import atomic_path, data_dir, runs_dir
from .base import BrainImageDataset, SubjectData
from .rois import AREAS, PAPER_SUBJECTS

FORMAT_VERSION = 1
SOURCES = ("raw", "webdataset")
N_IMAGES = 73000
N_SHARED = 1000
N_SUBJECT_IMAGES = 10000
N_TRIALS = 30000
TRIALS_PER_SESSION = 750
MAX_SESSIONS = N_TRIALS // TRIALS_PER_SESSION
N_REPEATS = 3
BETAS_SCALE = 300.0
IMAGE_SHAPE = (425, 425, 3)
#: ROI atlases in the order that settles a voxel claimed by two of them
ROI_ATLASES = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words")

EXPDESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
STIM_INFO = "nsddata/experiments/nsd/nsd_stim_info_merged.csv"
STIMULI = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
COCO_CAPTIONS = {
    "train2017": "coco/annotations/captions_train2017.json",
    "val2017": "coco/annotations/captions_val2017.json",
}
_TAR_RE = re.compile(r"^(train|val|test)_subj(\d\d)_.*\.tar$")
_READ_BLOCK = 50  # trials per read: bounds the int16 buffer of a session read
_ZSCORE_COLUMNS = 2048  # voxels per z-scoring step: bounds the float64 temporaries


def betas_path(subject: int, session: int) -> str:
    """NSD's relative path of one session's betas (1.8 mm, GLMsingle fit b3)."""
    return (
        f"nsddata_betas/ppdata/subj{subject:02d}/func1pt8mm/betas_fithrf_GLMdenoise_RR/"
        f"betas_session{session:02d}.hdf5"
    )


def roi_path(subject: int, name: str) -> str:
    """NSD's relative path of a 1.8 mm ROI volume (``nsdgeneral``, ``prf-visualrois``, ...)."""
    return f"nsddata/ppdata/subj{subject:02d}/func1pt8mm/roi/{name}.nii.gz"


def ctab_path(subject: int, name: str) -> str:
    """NSD's relative path of an ROI atlas' label table."""
    return f"nsddata/freesurfer/subj{subject:02d}/label/{name}.mgz.ctab"


class MissingFeaturesError(LookupError):
    """Image embeddings asked for that the features file does not hold (or no file given)."""


@dataclass(frozen=True)
class _Design:
    masterordering: np.ndarray  # (30000,) 1-based into a subject's 10000 images
    subjectim: np.ndarray  # (8, 10000) 1-based 73k ids
    sharedix: np.ndarray  # (1000,) 1-based 73k ids


@dataclass
class _Arrays:
    """One subject's preprocessed arrays, as cached (test rows not yet restricted to the common set)."""

    train_voxels: np.ndarray  # (n_train, 3, V) float16
    train_image_ids: np.ndarray  # (n_train,)
    seen_test_ids: np.ndarray  # (m,) every test image this subject saw, ascending
    seen_test_voxels: np.ndarray  # (m, V) float32, mean over available repeats
    seen_test_counts: np.ndarray  # (m,) repeats averaged
    voxel_area: np.ndarray  # (V,) str
    meta: dict


class NSD(BrainImageDataset):
    """The Natural Scenes Dataset, read from a local copy (see the module docstring for the layout
    and the preprocessing).

    Parameters
    ----------
    root : path, optional
        The NSD folder; default ``OTNSD_DATA``.
    subjects : sequence of int
        NSD subjects (1-8). The test set is the shared images every one of them saw.
    source : {"raw", "webdataset"}
        NSD's own files, or the community webdataset tars found under ``root``.
    features : path, optional
        HDF5 file of image embeddings: ``features`` (n, T, D) and ``image_ids`` (n,) 0-based 73k
        ids (CLIP ViT-L/14 features). Without it :meth:`image_embeddings` is an error.
    cache_dir : path, optional
        Where preprocessed subjects are cached; default ``runs_dir() / "nsd_cache"``.

    Examples
    --------
    >>> nsd = NSD(subjects=(1, 2, 5, 7), features="clip_vitl14.h5")  # doctest: +SKIP
    >>> s1 = nsd.subject(1)  # doctest: +SKIP
    >>> s1.train_voxels.shape, s1.test_voxels.shape  # doctest: +SKIP
    ((n_train, 3, 15724), (982, 15724))
    """

    label = "NSD"
    simulated = False

    def __init__(self, root=None, subjects=PAPER_SUBJECTS, *, source: str = "raw", features=None, cache_dir=None):
        self.root = data_dir(root)
        self._subjects = _check_subjects(subjects)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}; got {source!r}")
        self.source = source
        self.features_path = None if features is None else Path(features)
        if self.features_path is not None and not self.features_path.is_file():
            raise FileNotFoundError(
                f"the image-feature file (CLIP ViT-L/14 embeddings) was not found: looked for "
                f"{self.features_path.resolve()}; compute the features first or pass features=None"
            )
        self._cache_dir_arg = cache_dir
        self._session_memo: dict[int, tuple[int, ...]] = {}
        # Fail at once on the files every subject needs; the rest is read on first use.
        if source == "raw":
            self._file(EXPDESIGN, "the experimental design")
            for s in self._subjects:
                self._file(roi_path(s, "nsdgeneral"), f"subject {s}'s nsdgeneral mask")
                self._sessions(s)
        else:
            for s in self._subjects:
                self._tars(s)

    # ------------------------------------------------------------------------------ dataset API
    @property
    def subjects(self) -> tuple[int, ...]:
        return self._subjects

    @property
    def embedding_shape(self) -> tuple[int, int]:
        """(T, D) of the features file; an error when there is none."""
        return self._features.shape

    @cached_property
    def test_image_ids(self) -> np.ndarray:
        """Shared images seen at least once by every subject of this dataset, ascending 73k ids."""
        common = None
        for s in self._subjects:
            seen = self._seen_test_ids(s)
            common = seen if common is None else np.intersect1d(common, seen)
        return np.asarray(common, dtype=np.int64)

    def _load_subject(self, subject: int) -> SubjectData:
        a = self._subject_arrays(subject)
        keep = np.isin(a.seen_test_ids, self.test_image_ids)
        meta = dict(a.meta)
        meta["test_images_not_common"] = int((~keep).sum())
        meta["test_repeat_counts"] = _count_dict(a.seen_test_counts[keep])
        if meta.get("from_cache") and meta.get("roi_missing"):  # a cached load warns too
            _warn_roi_missing(subject, meta["roi_missing"])
        return SubjectData(
            subject=subject,
            train_voxels=a.train_voxels,
            train_image_ids=a.train_image_ids,
            test_voxels=a.seen_test_voxels[keep],
            test_image_ids=a.seen_test_ids[keep],
            voxel_area=a.voxel_area,
            meta=meta,
        )

    def image_embeddings(self, image_ids) -> np.ndarray:
        """Embeddings of ``image_ids`` from the features file.

        Returns
        -------
        float32 array, shape (len(image_ids), T, D), in the order asked.

        Raises
        ------
        MissingFeaturesError
            No features file, or ids it does not hold (all of them are named).
        """
        ids = _as_ids(image_ids)
        if self.features_path is None:
            raise MissingFeaturesError(
                f"no image features for the {len(ids)} requested image ids ({_show(np.unique(ids))}): "
                "pass features= an HDF5 file of CLIP ViT-L/14 features ('features' (n, T, D), "
                "'image_ids' (n,)); compute them first"
            )
        rows = self._features.rows(ids)
        if (rows < 0).any():
            missing = np.unique(ids[rows < 0])
            raise MissingFeaturesError(
                f"{self.features_path} has no features for {len(missing)} of the requested image ids ({_show(missing)}): "
                f"compute CLIP ViT-L/14 features for these NSD images first"
            )
        return self._features.read(rows)

    def captions(self, image_ids) -> list[list[str]]:
        """Every COCO caption of each image, in the annotation file's order.

        Returns
        -------
        list (len(image_ids)) of lists of str (usually five per image).
        """
        ids = _as_ids(image_ids)
        coco_id, split = self._stim_info
        unknown = ids[coco_id[ids] < 0]
        if unknown.size:
            raise ValueError(
                f"image ids {unknown[:20].tolist()} are not in the stimulus table "
                f"{self.root / STIM_INFO} (NSD: {STIM_INFO})"
            )
        out = []
        for i in ids:
            table = self._coco_captions(split[i])
            caps = table.get(int(coco_id[i]))
            if not caps:
                raise ValueError(
                    f"COCO image {int(coco_id[i])} (NSD image {int(i)}) has no caption in "
                    f"{self.root / COCO_CAPTIONS[split[i]]}"
                )
            out.append(list(caps))
        return out

    def images(self, image_ids) -> np.ndarray:
        """The NSD stimuli, read from ``nsd_stimuli.hdf5`` on demand.

        Returns
        -------
        uint8 array, shape (len(image_ids), 425, 425, 3), in the order asked.
        """
        ids = _as_ids(image_ids)
        path = self._file(STIMULI, "the NSD stimuli")
        with _open_h5(path, "the NSD stimuli", f"NSD: {STIMULI}") as f:
            if "imgBrick" not in f:
                raise ValueError(f"{path} (NSD: {STIMULI}) has no dataset 'imgBrick'")
            ds = f["imgBrick"]
            if ds.shape != (N_IMAGES, *IMAGE_SHAPE) or ds.dtype != np.uint8:
                raise ValueError(
                    f"{path} (NSD: {STIMULI}): imgBrick is {ds.shape} {ds.dtype}; expected "
                    f"{(N_IMAGES, *IMAGE_SHAPE)} uint8"
                )
            if not len(ids):
                return np.zeros((0, *IMAGE_SHAPE), dtype=np.uint8)
            return read_rows(ds, ids)

    def config(self) -> dict:
        """Kind, version, subjects, source, the input files (relative to root) with their sizes
        and modification times, and the features file's name, size and modification time."""
        files = {}
        for s in self._subjects:
            files.update(self._input_files(s))
        feats = None
        if self.features_path is not None:
            size, mtime = _stamp(self.features_path)
            feats = {"name": self.features_path.name, "size": size, "mtime_ns": mtime}
        return {
            "kind": "NSD",
            "version": FORMAT_VERSION,
            "subjects": list(self._subjects),
            "source": self.source,
            "files": sorted([k, v] for k, v in files.items()),
            "features": feats,
        }

    def __repr__(self) -> str:
        try:
            shape = "x".join(map(str, self._features.shape)) if self.features_path else "none"
        except (OSError, ValueError):
            shape = "unreadable"
        return (
            f"NSD(root={str(self.root)!r}, subjects={list(self._subjects)}, source={self.source!r}, "
            f"embeddings={shape}, fingerprint={self.fingerprint})"
        )

    # ------------------------------------------------------------------------------ files
    def _file(self, rel: str, what: str, name: str | None = None) -> Path:
        """``root / rel``; a missing file is an error naming it, what NSD calls it, and where it was looked for."""
        path = self.root / rel
        if not path.is_file():
            raise FileNotFoundError(f"{what} ({name or 'NSD: ' + rel}) was not found: looked for {path}")
        return path

    def _sessions(self, subject: int) -> tuple[int, ...]:
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
                stacklevel=3,
            )
        self._session_memo[subject] = tuple(found)
        return self._session_memo[subject]

    @cached_property
    def _tar_index(self) -> dict[tuple[int, str], list[Path]]:
        index: dict[tuple[int, str], list[Path]] = {}
        for p in sorted(self.root.rglob("*_subj*_*.tar")):
            m = _TAR_RE.match(p.name)
            if m and p.is_file():
                index.setdefault((int(m.group(2)), m.group(1)), []).append(p)
        return index

    def _tars(self, subject: int) -> dict[str, list[Path]]:
        tars = {split: self._tar_index.get((subject, split), []) for split in ("train", "val", "test")}
        for split in ("train", "test"):
            if not tars[split]:
                raise FileNotFoundError(
                    f"subject {subject}'s webdataset {split} tars ({split}_subj{subject:02d}_*.tar) were not "
                    f"found: searched {self.root} and its subfolders"
                )
        return tars

    def _roi_files(self, subject: int) -> list[str]:
        """Relative paths of the label files present (nsdgeneral, atlases and their tables)."""
        rels = [roi_path(subject, "nsdgeneral")]
        for name in ROI_ATLASES:
            rels += [roi_path(subject, name), ctab_path(subject, name)]
        return [r for r in rels if (self.root / r).is_file()]

    def _input_files(self, subject: int) -> dict[str, list[int]]:
        """Every file the subject's arrays are computed from: relative path -> [size, mtime in ns]
        (a file replaced by other content of the same size still changes its modification time)."""
        if self.source == "raw":
            rels = [betas_path(subject, n) for n in self._sessions(subject)] + self._roi_files(subject) + [EXPDESIGN]
            return {r: _stamp(self.root / r) for r in rels}
        out = {}
        for paths in self._tars(subject).values():
            for p in paths:
                out[p.relative_to(self.root).as_posix()] = _stamp(p)
        out.update({r: _stamp(self.root / r) for r in self._roi_files(subject)})
        return out

    # ------------------------------------------------------------------------------ cache
    @property
    def cache_dir(self) -> Path:
        if self._cache_dir_arg is not None:
            return Path(self._cache_dir_arg)
        return runs_dir() / "nsd_cache"

    def cache_path(self, subject: int) -> Path:
        """The cache file of a subject's preprocessed arrays (it may not exist yet)."""
        key = {
            "subject": subject,
            "source": self.source,
            "files": sorted(self._input_files(subject).items()),
            "version": FORMAT_VERSION,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_dir / f"nsd_subj{subject:02d}_{self.source}_{digest}.h5"

    def _subject_arrays(self, subject: int) -> _Arrays:
        path = self.cache_path(subject)
        if path.is_file():
            try:
                return _read_cache(path)
            except (OSError, KeyError, ValueError) as e:
                warnings.warn(f"ignoring unreadable cache {path} ({e}); recomputing", UserWarning, stacklevel=3)
        a = self._build_raw(subject) if self.source == "raw" else self._build_webdataset(subject)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_cache(path, a)
        a.meta.update(cache=str(path), from_cache=False)
        return a

    def _seen_test_ids(self, subject: int) -> np.ndarray:
        path = self.cache_path(subject)
        if path.is_file():
            import h5py

            try:
                with h5py.File(path, "r") as f:
                    return f["seen_test_ids"][:].astype(np.int64)
            except (OSError, KeyError):
                pass  # rebuilt from the source below; the loader replaces the bad cache
        if self.source == "raw":
            ids, shared = self._trial_images(subject)
            return np.unique(ids[shared])
        ids = [_sample_id(s, p) for p in self._tars(subject)["test"] for _, s in _tar_samples(p, ("coco73k.npy",))]
        return np.unique(np.asarray(ids, dtype=np.int64))

    # ------------------------------------------------------------------------------ raw NSD
    @cached_property
    def _design(self) -> _Design:
        import scipy.io

        path = self._file(EXPDESIGN, "the experimental design")
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
        n = len(self._sessions(subject)) * TRIALS_PER_SESSION
        d = self._design
        mo = d.masterordering[:n]
        return d.subjectim[subject - 1, mo - 1] - 1, mo <= N_SHARED

    def _nsdgeneral(self, subject: int) -> np.ndarray:
        rel = roi_path(subject, "nsdgeneral")
        path = self._file(rel, f"subject {subject}'s nsdgeneral mask")
        vol = _load_nifti(path, "nsdgeneral mask", rel)
        mask = np.nan_to_num(vol) > 0
        if not mask.any():
            raise ValueError(f"the nsdgeneral mask {path} (NSD: {rel}) has no voxel > 0")
        return mask

    def _build_raw(self, subject: int) -> _Arrays:
        mask = self._nsdgeneral(subject)
        V = int(mask.sum())
        area, roi_meta = self._voxel_areas(subject, mask)
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
        for k, session in enumerate(self._sessions(subject)):
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
        filled = _fill_repeats(train, counts)
        meta = {
            "source": "raw",
            "sessions": len(self._sessions(subject)),
            "trials": len(ids),
            "train_repeat_counts": _count_dict(counts),
            "filled_repeats": filled,
            "extra_repeats_dropped": extra,
            "constant_voxel_sessions": constant,
            **roi_meta,
        }
        test = (test_sum / test_n[:, None]).astype(np.float32)
        return _Arrays(train, train_ids, test_ids, test, test_n, area, meta)

    def _read_session(self, subject: int, session: int, mask: np.ndarray) -> tuple[np.ndarray, int]:
        """One session's betas inside the mask, /300 and z-scored per voxel: (750, V) float32."""
        rel = betas_path(subject, session)
        path = self._file(rel, f"subject {subject}'s betas, session {session:02d}")
        X, Y, Z = mask.shape
        expected = (TRIALS_PER_SESSION, Z, Y, X)
        xs, ys, zs = (np.flatnonzero(mask.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
        x0, x1, y0, y1, z0, z1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1, zs[0], zs[-1] + 1
        box = mask[x0:x1, y0:y1, z0:z1]  # C-order inside the box = C-order of the whole mask
        out = np.empty((TRIALS_PER_SESSION, int(mask.sum())), dtype=np.float32)
        with _open_h5(path, f"subject {subject}'s betas", f"NSD: {rel}") as f:
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

    def _voxel_areas(self, subject: int, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        """Area of each mask voxel from the ROI atlases (first claim wins), with counts for meta."""
        V = int(mask.sum())
        area = np.full(V, "Other", dtype=object)
        claims = np.zeros(V, dtype=np.int64)
        missing, unlabelled = [], 0
        for name in ROI_ATLASES:
            nii, tab = roi_path(subject, name), ctab_path(subject, name)
            lacking = [str(self.root / r) for r in (nii, tab) if not (self.root / r).is_file()]
            if lacking:
                missing += lacking
                continue
            vol = _load_nifti(self.root / nii, f"ROI atlas {name}", nii)
            if vol.shape != mask.shape:
                raise ValueError(
                    f"{self.root / nii} (NSD: {nii}) has shape {vol.shape}; expected the nsdgeneral "
                    f"mask's {mask.shape}"
                )
            labels = _read_ctab(self.root / tab, tab)
            vals = np.rint(np.nan_to_num(vol[mask], nan=0.0)).astype(np.int64)
            known = {i: n for i, n in labels.items() if i >= 1 and n in AREAS and n != "Other"}
            unlabelled += int(((vals >= 1) & ~np.isin(vals, list(labels))).sum())
            hit = np.isin(vals, list(known))
            take = hit & (claims == 0)
            area[take] = [known[v] for v in vals[take].tolist()]
            claims += hit
        if missing:
            _warn_roi_missing(subject, missing)
        meta = {
            "roi_overlap_voxels": int((claims > 1).sum()),
            "roi_unlabelled_values": unlabelled,
            "roi_missing": missing,
        }
        return area.astype(str), meta

    # ------------------------------------------------------------------------------ webdataset
    def _build_webdataset(self, subject: int) -> _Arrays:
        tars = self._tars(subject)
        train_tars = tars["train"] + tars["val"]
        # Pass 1: image ids only, so that the voxels go straight to their row.
        train_ids_all = [_sample_id(s, p) for p in train_tars for _, s in _tar_samples(p, ("coco73k.npy",))]
        test_ids_all = [_sample_id(s, p) for p in tars["test"] for _, s in _tar_samples(p, ("coco73k.npy",))]
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
                for key, s in _tar_samples(p, ("coco73k.npy", "nsdgeneral.npy")):
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
                    i = _sample_id(s, p)
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
        filled = _fill_repeats(train, counts)
        area, roi_meta = self._webdataset_areas(subject, V)
        meta = {
            "source": "webdataset",
            "tars": [p.relative_to(self.root).as_posix() for p in train_tars + tars["test"]],
            "train_repeat_counts": _count_dict(counts),
            "filled_repeats": filled,
            "duplicate_train_samples": duplicates,
            **roi_meta,
        }
        test = (test_sum / test_n[:, None]).astype(np.float32)
        return _Arrays(train, train_ids, test_ids, test, test_n, area, meta)

    def _webdataset_areas(self, subject: int, V: int) -> tuple[np.ndarray, dict]:
        rel = roi_path(subject, "nsdgeneral")
        if not (self.root / rel).is_file():
            missing = [str(self.root / rel)] + [
                str(self.root / r) for n in ROI_ATLASES for r in (roi_path(subject, n), ctab_path(subject, n))
            ]
            _warn_roi_missing(subject, missing)
            return np.full(V, "Other"), {"roi_overlap_voxels": 0, "roi_unlabelled_values": 0, "roi_missing": missing}
        mask = self._nsdgeneral(subject)
        if int(mask.sum()) != V:
            raise ValueError(
                f"subject {subject}'s webdataset samples have {V} voxels but the nsdgeneral mask "
                f"{self.root / rel} (NSD: {rel}) has {int(mask.sum())}"
            )
        return self._voxel_areas(subject, mask)

    # ------------------------------------------------------------------------------ captions, features
    @cached_property
    def _stim_info(self) -> tuple[np.ndarray, np.ndarray]:
        """COCO id (-1 when absent) and COCO split of every 73k image."""
        path = self._file(STIM_INFO, "the stimulus table")
        coco = np.full(N_IMAGES, -1, dtype=np.int64)
        split = np.full(N_IMAGES, "", dtype=object)
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            lacking = {"cocoId", "cocoSplit", "nsdId"} - set(reader.fieldnames or ())
            if lacking:
                raise ValueError(f"{path} (NSD: {STIM_INFO}) lacks the columns {sorted(lacking)}")
            for line in reader:
                try:
                    i = int(line["nsdId"])
                    if not 0 <= i < N_IMAGES:
                        raise IndexError(i)
                    coco[i] = int(line["cocoId"])
                except (ValueError, IndexError) as e:
                    raise ValueError(f"{path} (NSD: {STIM_INFO}): bad row {line} (nsdId must be 0..{N_IMAGES - 1})") from e
                split[i] = line["cocoSplit"]
        bad = set(split[coco >= 0]) - set(COCO_CAPTIONS)
        if bad:
            raise ValueError(f"{path} (NSD: {STIM_INFO}): unknown cocoSplit values {sorted(bad)}; expected {list(COCO_CAPTIONS)}")
        return coco, split

    def _coco_captions(self, split: str) -> dict[int, list[str]]:
        memo = self.__dict__.setdefault("_coco_memo", {})
        if split not in memo:
            rel = COCO_CAPTIONS[split]
            name = f"COCO: annotations/{Path(rel).name} of annotations_trainval2017.zip, kept as {rel}"
            path = self._file(rel, f"the COCO {split} captions", name)
            try:
                with open(path) as fh:
                    anns = json.load(fh)["annotations"]
                table: dict[int, list[str]] = {}
                for a in anns:
                    table.setdefault(int(a["image_id"]), []).append(str(a["caption"]).strip())
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path} is not a COCO captions file (annotations of image_id, caption): {e}") from e
            memo[split] = table
        return memo[split]

    @cached_property
    def _features(self) -> FeatureFile:
        if self.features_path is None:
            raise MissingFeaturesError(
                "no image features: pass features= an HDF5 file of CLIP ViT-L/14 features "
                "(datasets 'features' (n, T, D) and 'image_ids' (n,)); compute them first"
            )
        return FeatureFile(self.features_path)


# ------------------------------------------------------------------------------------ helpers
def _check_subjects(subjects) -> tuple[int, ...]:
    subjects = (subjects,) if isinstance(subjects, (int, np.integer)) else tuple(subjects)
    bad = [s for s in subjects if not isinstance(s, (int, np.integer)) or not 1 <= s <= 8]
    if bad or not subjects:
        raise ValueError(f"subjects must be NSD subjects 1-8; got {list(subjects)}")
    if len(set(subjects)) != len(subjects):
        raise ValueError(f"subjects are listed twice: {list(subjects)}")
    return tuple(int(s) for s in subjects)


def _as_ids(image_ids) -> np.ndarray:
    ids = np.asarray(image_ids).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"image ids must be integers (0-based NSD 73k ids); got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= N_IMAGES):
        raise ValueError(f"image ids must be 0-based NSD 73k ids in [0, {N_IMAGES}); got {ids.min()}..{ids.max()}")
    return ids


def _show(ids: np.ndarray, n: int = 20) -> str:
    return ", ".join(str(i) for i in ids[:n].tolist()) + (", ..." if len(ids) > n else "")


def _count_dict(counts: np.ndarray) -> dict[str, int]:
    return {str(k): int((counts == k).sum()) for k in range(1, N_REPEATS + 1)}


def _fill_repeats(train: np.ndarray, counts: np.ndarray) -> int:
    """Fill missing repeats in place by cycling through the available ones; returns how many."""
    filled = 0
    for r, c in enumerate(counts.tolist()):
        for k in range(c, N_REPEATS):
            train[r, k] = train[r, k % c]
            filled += 1
    return filled


def _warn_roi_missing(subject: int, missing: list[str]) -> None:
    warnings.warn(
        f"subject {subject}: ROI files are missing, so the voxels they would label are 'Other' "
        f"(region analyses need them): {', '.join(missing)}",
        UserWarning,
        stacklevel=4,
    )


def _open_h5(path: Path, what: str, name: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"cannot read {what} {path} ({name}) as HDF5: {e}") from e


def _load_nifti(path: Path, what: str, rel: str) -> np.ndarray:
    import nibabel

    try:
        return np.asanyarray(nibabel.load(str(path)).dataobj)
    except Exception as e:  # nibabel raises several types for a bad file
        raise ValueError(f"cannot read the {what} {path} (NSD: {rel}) as NIfTI: {e}") from e


def _read_ctab(path: Path, rel: str) -> dict[int, str]:
    """Label table: one 'index name' per line (more columns, e.g. colours, are ignored)."""
    labels = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the label table {path} (NSD: {rel}): {e}") from e
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 2 or not re.fullmatch(r"-?\d+", parts[0]):
            raise ValueError(
                f"cannot read the label table {path} (NSD: {rel}): line {n} is {line!r}; expected "
                "'index name' on each line, e.g. '1 V1v'"
            )
        labels[int(parts[0])] = parts[1]
    if not labels:
        raise ValueError(f"the label table {path} (NSD: {rel}) is empty; expected 'index name' lines, e.g. '1 V1v'")
    return labels


def _tar_samples(path: Path, wanted: tuple[str, ...]):
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


def _sample_id(sample: dict, path: Path) -> int:
    """The 73k id of a webdataset sample (``coco73k.npy`` holds one integer)."""
    if "coco73k.npy" not in sample:
        raise ValueError(f"{path}: a sample has no coco73k.npy")
    a = np.asarray(sample["coco73k.npy"]).reshape(-1)
    if a.size != 1 or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{path}: coco73k.npy holds {a.size} values of {a.dtype}; expected one 73k id")
    return int(a[0])


def _stamp(path: Path) -> list[int]:
    """Size and modification time (ns) of a file: what keys the caches built from it."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _write_cache(path: Path, a: _Arrays) -> None:
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("train_voxels", data=a.train_voxels)
        f.create_dataset("train_image_ids", data=a.train_image_ids.astype(np.int64))
        f.create_dataset("seen_test_ids", data=a.seen_test_ids.astype(np.int64))
        f.create_dataset("seen_test_voxels", data=a.seen_test_voxels)
        f.create_dataset("seen_test_counts", data=a.seen_test_counts.astype(np.int64))
        f.create_dataset("voxel_area", data=np.char.encode(a.voxel_area.astype(str), "ascii"))
        f.attrs["meta"] = json.dumps(a.meta)
        f.attrs["version"] = FORMAT_VERSION


def _read_cache(path: Path) -> _Arrays:
    import h5py

    with h5py.File(path, "r") as f:
        if int(f.attrs["version"]) != FORMAT_VERSION:
            raise ValueError(f"cache format {f.attrs['version']}, expected {FORMAT_VERSION}")
        meta = json.loads(f.attrs["meta"])
        meta.update(cache=str(path), from_cache=True)
        a = _Arrays(
            train_voxels=f["train_voxels"][:],
            train_image_ids=f["train_image_ids"][:],
            seen_test_ids=f["seen_test_ids"][:],
            seen_test_voxels=f["seen_test_voxels"][:],
            seen_test_counts=f["seen_test_counts"][:],
            voxel_area=np.char.decode(f["voxel_area"][:], "ascii").astype(str),
            meta=meta,
        )
    return a
