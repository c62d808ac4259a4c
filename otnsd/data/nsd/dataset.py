"""The :class:`NSD` dataset: which subjects and images, the test set they share, the cache, and
the :class:`~otnsd.data.base.BrainImageDataset` API over a source (:mod:`.raw` or
:mod:`.webdataset`), the stimuli (:mod:`.stimuli`) and a features file."""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from ...features import FeatureFile
from ...paths import data_dir, runs_dir
from ..base import BrainImageDataset, SubjectData
from ..rois import PAPER_SUBJECTS
from .atlas import warn_roi_missing
from .cache import FORMAT_VERSION, SubjectArrays, cache_file, cached_test_ids, count_dict, read_cache, write_cache
from .files import N_IMAGES, stamp
from .raw import RawSource
from .stimuli import Stimuli
from .webdataset import WebdatasetSource

SOURCES = ("raw", "webdataset")


class MissingFeaturesError(LookupError):
    """Image embeddings asked for that the features file does not hold (or no file given)."""


class Source(Protocol):
    """Where a subject's voxels come from (:class:`~.raw.RawSource`, :class:`~.webdataset.WebdatasetSource`)."""

    name: str

    def check(self, subjects) -> None:
        """Raise FileNotFoundError, naming the file, when a file every load needs is missing."""

    def input_files(self, subject: int) -> dict[str, list[int]]:
        """Relative path -> [size, mtime in ns] of every file the subject's arrays come from."""

    def seen_test_ids(self, subject: int) -> np.ndarray:
        """Ascending ids of every shared image the subject saw."""

    def build(self, subject: int) -> SubjectArrays:
        """The subject's preprocessed arrays, read from the files."""


class NSD(BrainImageDataset):
    """The Natural Scenes Dataset, read from a local copy (see :mod:`otnsd.data.nsd` for the
    layout and the preprocessing).

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
        self._source: Source = RawSource(self.root) if source == "raw" else WebdatasetSource(self.root)
        self._stimuli = Stimuli(self.root)
        # Fail at once on the files every subject needs; the rest is read on first use.
        self._source.check(self._subjects)

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
            seen = cached_test_ids(self.cache_path(s))
            seen = self._source.seen_test_ids(s) if seen is None else seen
            common = seen if common is None else np.intersect1d(common, seen)
        return np.asarray(common, dtype=np.int64)

    def _load_subject(self, subject: int) -> SubjectData:
        a = self._subject_arrays(subject)
        keep = np.isin(a.seen_test_ids, self.test_image_ids)
        meta = dict(a.meta)
        meta["test_images_not_common"] = int((~keep).sum())
        meta["test_repeat_counts"] = count_dict(a.seen_test_counts[keep])
        if meta.get("from_cache") and meta.get("roi_missing"):  # a cached load warns too
            warn_roi_missing(subject, meta["roi_missing"])
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
        return self._stimuli.captions(_as_ids(image_ids))

    def images(self, image_ids) -> np.ndarray:
        """The NSD stimuli, read from ``nsd_stimuli.hdf5`` on demand.

        Returns
        -------
        uint8 array, shape (len(image_ids), 425, 425, 3), in the order asked.
        """
        return self._stimuli.images(_as_ids(image_ids))

    def config(self) -> dict:
        """Kind, version, subjects, source, the input files (relative to root) with their sizes
        and modification times, and the features file's name, size and modification time."""
        files = {}
        for s in self._subjects:
            files.update(self._source.input_files(s))
        feats = None
        if self.features_path is not None:
            size, mtime = stamp(self.features_path)
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

    # ------------------------------------------------------------------------------ cache
    @property
    def cache_dir(self) -> Path:
        if self._cache_dir_arg is not None:
            return Path(self._cache_dir_arg)
        return runs_dir() / "nsd_cache"

    def cache_path(self, subject: int) -> Path:
        """The cache file of a subject's preprocessed arrays (it may not exist yet)."""
        return cache_file(self.cache_dir, subject, self.source, self._source.input_files(subject))

    def _subject_arrays(self, subject: int) -> SubjectArrays:
        path = self.cache_path(subject)
        if path.is_file():
            try:
                return read_cache(path)
            except (OSError, KeyError, ValueError) as e:
                warnings.warn(f"ignoring unreadable cache {path} ({e}); recomputing", UserWarning, stacklevel=3)
        a = self._source.build(subject)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_cache(path, a)
        a.meta.update(cache=str(path), from_cache=False)
        return a

    # ------------------------------------------------------------------------------ features
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
