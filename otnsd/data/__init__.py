"""Datasets: one API (:class:`BrainImageDataset`) for the simulated default and real NSD."""

from .base import BrainImageDataset, SubjectData
from .rois import AREA_REGION, AREAS, NSDGENERAL_VOXELS, PAPER_SUBJECTS, REGION_AREAS, REGIONS
from .simulated import GroundTruth, SimConfig, SimulatedNSD



def load_dataset(name: str = "simulated", **kwargs) -> BrainImageDataset:
    """A dataset by name: "simulated" (:class:`SimulatedNSD`, keyword arguments as its fields).

    Real NSD ("nsd") loads behind the same API once its loader lands; until then asking for it is
    an error that says so.
    """
    if name == "simulated":
        return SimulatedNSD(**kwargs)
    if name == "nsd":
        raise NotImplementedError(
            "real NSD loading is not implemented yet; use dataset='simulated' (the loader will read "
            "the NSD copy that OTNSD_DATA points to)"
        )
    raise ValueError(f"unknown dataset {name!r}; choose 'simulated' (or, later, 'nsd')")


__all__ = [
    "load_dataset",
    "BrainImageDataset",
    "SubjectData",
    "SimulatedNSD",
    "SimConfig",
    "GroundTruth",
    "REGIONS",
    "REGION_AREAS",
    "AREAS",
    "AREA_REGION",
    "NSDGENERAL_VOXELS",
    "PAPER_SUBJECTS",
]
