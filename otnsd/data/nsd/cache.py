"""One subject's preprocessed arrays, as every source builds them, and their on-disk cache.

A cache file is keyed by the subject, the source, the format version and the size and
modification time of every input file: any change to the inputs misses the cache, and the next
load of unchanged inputs reads only the cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...paths import atomic_path
from .files import N_REPEATS

#: version of the preprocessing and of the cache format; a new one misses every cache and
#: changes every NSD fingerprint
FORMAT_VERSION = 1


@dataclass
class SubjectArrays:
    """One subject's preprocessed arrays, as cached (test rows not yet restricted to the images
    every subject of a dataset saw)."""

    train_voxels: np.ndarray  # (n_train, 3, V) float16
    train_image_ids: np.ndarray  # (n_train,)
    seen_test_ids: np.ndarray  # (m,) every test image this subject saw, ascending
    seen_test_voxels: np.ndarray  # (m, V) float32, mean over available repeats
    seen_test_counts: np.ndarray  # (m,) repeats averaged
    voxel_area: np.ndarray  # (V,) str
    meta: dict


def fill_repeats(train: np.ndarray, counts: np.ndarray) -> int:
    """Fill missing repeats in place by cycling through the available ones; returns how many."""
    filled = 0
    for r, c in enumerate(counts.tolist()):
        for k in range(c, N_REPEATS):
            train[r, k] = train[r, k % c]
            filled += 1
    return filled


def count_dict(counts: np.ndarray) -> dict[str, int]:
    """How many rows have 1, 2, 3 repeats (for ``meta``)."""
    return {str(k): int((counts == k).sum()) for k in range(1, N_REPEATS + 1)}


def cache_file(cache_dir: Path, subject: int, source: str, files: dict[str, list[int]]) -> Path:
    """The cache file of a subject's arrays computed by ``source`` from ``files`` (relative path
    -> [size, mtime in ns]); it may not exist yet."""
    key = {"subject": subject, "source": source, "files": sorted(files.items()), "version": FORMAT_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / f"nsd_subj{subject:02d}_{source}_{digest}.h5"


def write_cache(path: Path, a: SubjectArrays) -> None:
    """Write ``a`` to ``path`` atomically (a killed write leaves no cache)."""
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


def read_cache(path: Path) -> SubjectArrays:
    """The arrays of a cache file; a file of another format version is a ValueError."""
    import h5py

    with h5py.File(path, "r") as f:
        if int(f.attrs["version"]) != FORMAT_VERSION:
            raise ValueError(f"cache format {f.attrs['version']}, expected {FORMAT_VERSION}")
        meta = json.loads(f.attrs["meta"])
        meta.update(cache=str(path), from_cache=True)
        return SubjectArrays(
            train_voxels=f["train_voxels"][:],
            train_image_ids=f["train_image_ids"][:],
            seen_test_ids=f["seen_test_ids"][:],
            seen_test_voxels=f["seen_test_voxels"][:],
            seen_test_counts=f["seen_test_counts"][:],
            voxel_area=np.char.decode(f["voxel_area"][:], "ascii").astype(str),
            meta=meta,
        )


def cached_test_ids(path: Path) -> np.ndarray | None:
    """The test images a cache file says its subject saw; None when there is no readable cache
    (the caller reads them from the source, and the next load replaces a bad cache)."""
    if not path.is_file():
        return None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f["seen_test_ids"][:].astype(np.int64)
    except (OSError, KeyError):
        return None
