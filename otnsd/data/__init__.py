"""Datasets: one API (:class:`BrainImageDataset`) for the simulated default and real NSD."""

from .base import BrainImageDataset, SubjectData
from .rois import AREA_REGION, AREAS, NSDGENERAL_VOXELS, PAPER_SUBJECTS, REGION_AREAS, REGIONS
from .simulated import GroundTruth, SimConfig, SimulatedNSD

__all__ = [
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
