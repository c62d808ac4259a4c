"""Datasets: one API (:class:`BrainImageDataset`) for the simulated default and real NSD, and one
factory, :func:`open_dataset`.

Layout: :mod:`.base` (the API and :class:`SubjectData`), :mod:`.rois` (areas and regions),
:mod:`.simulated` (the simulator: dataset, scenes, caption grammar) and :mod:`.nsd` (real NSD:
dataset, raw and webdataset sources, ROI atlas, stimuli, cache, files).
"""

from dataclasses import fields

from .base import BrainImageDataset, SubjectData
from .nsd import NSD, MissingFeaturesError
from .rois import AREA_REGION, AREAS, NSDGENERAL_VOXELS, PAPER_SUBJECTS, REGION_AREAS, REGIONS
from .simulated import DIFFICULTIES, GroundTruth, SimConfig, SimulatedNSD

DATASETS = ("simulated", "nsd")
# The simulator's own SimConfig fields, as open_dataset takes them: seed and subjects have their
# own parameters there, and the subjects it simulates are named apart from the subjects needed.
_SIM_OPTIONS = {f.name for f in fields(SimConfig)} - {"seed", "subjects"} | {"simulated_subjects", "difficulty"}
_NSD_OPTIONS = {"source", "cache_dir"}


def open_dataset(dataset: str = "simulated", *, seed: int = 0, root=None, features=None, subjects=None,
                 **options) -> BrainImageDataset:
    """The dataset named ``dataset``: the one factory of the notebooks, the scripts and
    ``python -m otnsd.train``.

    Parameters
    ----------
    dataset : {"simulated", "nsd"}
        The simulated NSD (:class:`SimulatedNSD`) or a local NSD copy (:class:`NSD`).
    seed : int
        The simulator's seed. Real NSD has none and ignores it, so that a notebook passes its
        ``seed`` either way.
    root : path, optional
        NSD only: the NSD folder (default ``OTNSD_DATA``).
    features : path, optional
        NSD only: the CLIP features file (``clip_features`` in the notebooks).
    subjects : sequence of int, optional
        The subjects needed. NSD loads exactly these (default the paper's 1, 2, 5, 7): its test
        set is the shared images all of them saw. The simulator simulates its own subjects (the
        paper's four, or ``simulated_subjects``) whatever the caller needs, so that its data and
        fingerprint do not depend on it; there ``subjects`` only has to be among them.
    **options
        The dataset class's other keyword arguments. Simulator: the fields of :class:`SimConfig`
        (``n_train``, ``n_test``, ``voxel_scale``, ...), with its ``subjects`` field given as
        ``simulated_subjects``, and ``difficulty``: a preset of :data:`DIFFICULTIES` (``"easy"``,
        the defaults, or ``"nsd"``, noise calibrated to the paper's MSE-to-ceiling ratio on real
        NSD) that the other fields override. NSD: ``source`` and ``cache_dir``.

    Returns
    -------
    BrainImageDataset

    Raises
    ------
    ValueError
        An unknown dataset, NSD-only arguments for the simulator, or subjects it does not simulate.
    TypeError
        Options the dataset does not take.
    FileNotFoundError
        NSD files that are missing (see :class:`NSD`).

    Examples
    --------
    >>> open_dataset("simulated", seed=0).fingerprint
    '21421e86e4209478'
    >>> data = open_dataset("nsd", root="/data/nsd", features="clip_vitl14.h5", subjects=[1, 2])  # doctest: +SKIP
    """
    if dataset == "simulated":
        if root is not None or features is not None:
            raise ValueError("data_root and clip_features are for real NSD only (dataset='nsd')")
        _check_options(dataset, options, _SIM_OPTIONS)
        if "simulated_subjects" in options:
            options["subjects"] = options.pop("simulated_subjects")
        difficulty = options.pop("difficulty", "easy")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown difficulty {difficulty!r}; choose one of {', '.join(map(repr, DIFFICULTIES))}")
        sim = SimulatedNSD(seed=seed, **{**DIFFICULTIES[difficulty], **options})
        unknown = sorted(set(subjects or ()) - set(sim.subjects))
        if unknown:
            raise ValueError(f"the simulated NSD has subjects {list(sim.subjects)}; not {unknown}")
        return sim
    if dataset == "nsd":
        _check_options(dataset, options, _NSD_OPTIONS)
        return NSD(root, subjects=PAPER_SUBJECTS if subjects is None else subjects, features=features, **options)
    raise ValueError(f"unknown dataset {dataset!r}; choose {' or '.join(repr(d) for d in DATASETS)}")


def load_dataset(name: str = "simulated", **kwargs) -> BrainImageDataset:
    """Alias of :func:`open_dataset` that takes the dataset class's own keyword arguments, as
    ``python -m otnsd.train --dataset NAME --data JSON`` passes them.

    The one difference: for the simulator ``subjects`` is the :class:`SimConfig` field, the
    subjects it simulates (``open_dataset``'s ``simulated_subjects``), so that
    ``load_dataset("simulated", **kw)`` is ``SimulatedNSD(**kw)``. New code calls
    :func:`open_dataset`.
    """
    if name == "simulated" and "subjects" in kwargs:
        kwargs["simulated_subjects"] = kwargs.pop("subjects")
    return open_dataset(name, **kwargs)


def _check_options(dataset: str, options: dict, allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"the {dataset!r} dataset takes no option {unknown}; it takes {sorted(allowed)}")


__all__ = [
    "open_dataset",
    "load_dataset",
    "DATASETS",
    "BrainImageDataset",
    "SubjectData",
    "SimulatedNSD",
    "NSD",
    "MissingFeaturesError",
    "SimConfig",
    "DIFFICULTIES",
    "GroundTruth",
    "REGIONS",
    "REGION_AREAS",
    "AREAS",
    "AREA_REGION",
    "NSDGENERAL_VOXELS",
    "PAPER_SUBJECTS",
]
