"""Voxel labels from NSD's ROI files: the ``nsdgeneral`` mask that selects the voxels and the
area of each voxel.

Each voxel takes the area of :data:`~otnsd.data.rois.AREAS` it falls in, in the atlases
``prf-visualrois``, ``floc-bodies``, ``floc-faces``, ``floc-places``, ``floc-words`` (label numbers
from the ``.ctab`` files, values < 1 outside). Labels outside ``AREAS`` (e.g. aTL-faces) claim
nothing; a voxel claimed by two atlases takes the first in that order (``meta`` counts them); a
voxel claimed by none is "Other". Missing atlases are a warning, not an error: their voxels are
"Other" and only region analyses need them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..rois import AREAS
from .files import ROI_ATLASES, ctab_path, load_nifti, read_ctab, require, roi_path


def nsdgeneral(root: Path, subject: int) -> np.ndarray:
    """The subject's ``nsdgeneral`` mask (value > 0), boolean (X, Y, Z) as nibabel returns it."""
    rel = roi_path(subject, "nsdgeneral")
    path = require(root, rel, f"subject {subject}'s nsdgeneral mask")
    mask = np.nan_to_num(load_nifti(path, "nsdgeneral mask", rel)) > 0
    if not mask.any():
        raise ValueError(f"the nsdgeneral mask {path} (NSD: {rel}) has no voxel > 0")
    return mask


def roi_files(root: Path, subject: int) -> list[str]:
    """Relative paths of the label files present (nsdgeneral, atlases and their tables)."""
    rels = [roi_path(subject, "nsdgeneral")]
    for name in ROI_ATLASES:
        rels += [roi_path(subject, name), ctab_path(subject, name)]
    return [r for r in rels if (root / r).is_file()]


def voxel_areas(root: Path, subject: int, mask: np.ndarray) -> tuple[np.ndarray, dict]:
    """Area of each mask voxel from the ROI atlases (first claim wins), with counts for meta."""
    V = int(mask.sum())
    area = np.full(V, "Other", dtype=object)
    claims = np.zeros(V, dtype=np.int64)
    missing, unlabelled = [], 0
    for name in ROI_ATLASES:
        nii, tab = roi_path(subject, name), ctab_path(subject, name)
        lacking = [str(root / r) for r in (nii, tab) if not (root / r).is_file()]
        if lacking:
            missing += lacking
            continue
        vol = load_nifti(root / nii, f"ROI atlas {name}", nii)
        if vol.shape != mask.shape:
            raise ValueError(
                f"{root / nii} (NSD: {nii}) has shape {vol.shape}; expected the nsdgeneral "
                f"mask's {mask.shape}"
            )
        labels = read_ctab(root / tab, tab)
        vals = np.rint(np.nan_to_num(vol[mask], nan=0.0)).astype(np.int64)
        known = {i: n for i, n in labels.items() if i >= 1 and n in AREAS and n != "Other"}
        unlabelled += int(((vals >= 1) & ~np.isin(vals, list(labels))).sum())
        hit = np.isin(vals, list(known))
        take = hit & (claims == 0)
        area[take] = [known[v] for v in vals[take].tolist()]
        claims += hit
    if missing:
        warn_roi_missing(subject, missing)
    meta = {
        "roi_overlap_voxels": int((claims > 1).sum()),
        "roi_unlabelled_values": unlabelled,
        "roi_missing": missing,
    }
    return area.astype(str), meta


def warn_roi_missing(subject: int, missing: list[str]) -> None:
    warnings.warn(
        f"subject {subject}: ROI files are missing, so the voxels they would label are 'Other' "
        f"(region analyses need them): {', '.join(missing)}",
        UserWarning,
        stacklevel=4,
    )
