"""NSD's file layout and the low-level readers: relative paths, NSD's constants, and readers of
HDF5, NIfTI and ``.ctab`` files whose errors name the file, what NSD calls it and where it was
looked for."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

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


def require(root: Path, rel: str, what: str, name: str | None = None) -> Path:
    """``root / rel``; a missing file is an error naming it, what NSD calls it, and where it was
    looked for."""
    path = root / rel
    if not path.is_file():
        raise FileNotFoundError(f"{what} ({name or 'NSD: ' + rel}) was not found: looked for {path}")
    return path


def stamp(path: Path) -> list[int]:
    """Size and modification time (ns) of a file: what keys the caches built from it."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def open_h5(path: Path, what: str, name: str):
    """``h5py.File(path, "r")``; an unreadable file is a ValueError naming it."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"cannot read {what} {path} ({name}) as HDF5: {e}") from e


def load_nifti(path: Path, what: str, rel: str) -> np.ndarray:
    """The voxel array of a NIfTI volume, as nibabel returns it (X, Y, Z)."""
    import nibabel

    try:
        return np.asanyarray(nibabel.load(str(path)).dataobj)
    except Exception as e:  # nibabel raises several types for a bad file
        raise ValueError(f"cannot read the {what} {path} (NSD: {rel}) as NIfTI: {e}") from e


def read_ctab(path: Path, rel: str) -> dict[int, str]:
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
