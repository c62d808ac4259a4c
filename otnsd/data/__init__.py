"""Datasets: one API (:class:`BrainImageDataset`) for the simulated default and real NSD."""

from .base import BrainImageDataset, SubjectData
from .nsd import NSD, MissingFeaturesError
from .rois import AREA_REGION, AREAS, NSDGENERAL_VOXELS, PAPER_SUBJECTS, REGION_AREAS, REGIONS
from .simulated import GroundTruth, SimConfig, SimulatedNSD


def load_dataset(name: str = "simulated", **kwargs) -> BrainImageDataset:
    """A dataset by name: "simulated" (:class:`SimulatedNSD`, keyword arguments as its fields) or
    "nsd" (:class:`NSD`: ``root``, ``subjects``, ``source``, ``features``, ``cache_dir``).
    """
    if name == "simulated":
        return SimulatedNSD(**kwargs)
    if name == "nsd":
        return NSD(**kwargs)
    raise ValueError(f"unknown dataset {name!r}; choose 'simulated' or 'nsd'")


def open_dataset(dataset: str = "simulated", *, seed: int = 0, root=None, features=None, subjects=None) -> BrainImageDataset:
    """The dataset a notebook's parameters describe (``dataset``, ``seed``, ``data_root``,
    ``clip_features``): the simulated NSD of ``seed``, or the NSD copy at ``root`` (else
    ``OTNSD_DATA``) with the CLIP features file ``features``.

    ``subjects``: the NSD subjects to load (default the paper's 1, 2, 5, 7; the test set is the
    shared images all of them saw). The simulated NSD always simulates its four subjects (they
    share its images), so there ``subjects`` only has to be among them.
    """
    if dataset == "simulated":
        if root is not None or features is not None:
            raise ValueError("data_root and clip_features are for real NSD only (dataset='nsd')")
        sim = SimulatedNSD(seed=seed)
        unknown = sorted(set(subjects or ()) - set(sim.subjects))
        if unknown:
            raise ValueError(f"the simulated NSD has subjects {list(sim.subjects)}; not {unknown}")
        return sim
    if dataset == "nsd":
        return NSD(root, subjects=tuple(subjects or PAPER_SUBJECTS), features=features)
    raise ValueError(f"unknown dataset {dataset!r}; choose 'simulated' or 'nsd'")


__all__ = [
    "open_dataset",
    "load_dataset",
    "BrainImageDataset",
    "SubjectData",
    "SimulatedNSD",
    "NSD",
    "MissingFeaturesError",
    "SimConfig",
    "GroundTruth",
    "REGIONS",
    "REGION_AREAS",
    "AREAS",
    "AREA_REGION",
    "NSDGENERAL_VOXELS",
    "PAPER_SUBJECTS",
]
