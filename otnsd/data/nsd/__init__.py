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

Either way a subject's training rows keep its non-shared images' three repeats apart
(``train_voxels`` (n_train, 3, V) float16) and its test rows are the shared images seen at least
once by *every* subject of ``subjects`` (982 images for subjects 1, 2, 5, 7 on NSD's release),
ascending 73k id, each the mean over the repeats available (``test_voxels`` float32). A
subject's arrays are cached in ``cache_dir``: the next load reads only the cache. Image ids
everywhere are NSD's 0-based 73k ids.

Modules, one job each
---------------------
:mod:`.dataset`
    :class:`NSD`: subjects, the shared test set, the cache, the dataset API.
:mod:`.raw`
    NSD's own files, and the preprocessing (betas / 300, z-scored per session, repeats).
:mod:`.webdataset`
    The community webdataset tars.
:mod:`.atlas`
    The ``nsdgeneral`` mask and each voxel's area from the ROI atlases.
:mod:`.stimuli`
    The images and their COCO captions.
:mod:`.cache`
    The arrays every source builds, and their cache files.
:mod:`.files`
    NSD's paths and constants, and the HDF5, NIfTI and ``.ctab`` readers.
"""

from .cache import FORMAT_VERSION
from .dataset import NSD, SOURCES, MissingFeaturesError
from .files import (
    BETAS_SCALE,
    COCO_CAPTIONS,
    EXPDESIGN,
    IMAGE_SHAPE,
    MAX_SESSIONS,
    N_IMAGES,
    N_REPEATS,
    N_SHARED,
    N_SUBJECT_IMAGES,
    N_TRIALS,
    ROI_ATLASES,
    STIM_INFO,
    STIMULI,
    TRIALS_PER_SESSION,
    betas_path,
    ctab_path,
    roi_path,
)

__all__ = [
    "NSD",
    "MissingFeaturesError",
    "SOURCES",
    "FORMAT_VERSION",
    "betas_path",
    "roi_path",
    "ctab_path",
    "EXPDESIGN",
    "STIM_INFO",
    "STIMULI",
    "COCO_CAPTIONS",
    "ROI_ATLASES",
    "N_IMAGES",
    "N_SHARED",
    "N_SUBJECT_IMAGES",
    "N_TRIALS",
    "TRIALS_PER_SESSION",
    "MAX_SESSIONS",
    "N_REPEATS",
    "BETAS_SCALE",
    "IMAGE_SHAPE",
]
