"""One dataset API for simulated and real NSD.

A dataset holds, per subject, the fMRI responses of that subject's training and test trials and
the voxels' area labels; shared across subjects it holds the images' embeddings (the alignment
targets, T tokens x D), their captions and the ids of the test images that every subject saw.
Training, captioning and every analysis go through :class:`BrainImageDataset`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .rois import AREA_REGION, AREAS, REGIONS, check_regions


@dataclass(frozen=True, eq=False)
class SubjectData:
    """One subject's responses and voxel labels.

    Attributes
    ----------
    subject : int
        NSD subject number (1-8).
    train_voxels : array, shape (n_train, n_repeats, V)
        Every repeat of every training image, kept apart: training draws one repeat per step, as
        NSD training pipelines do.
    train_image_ids : int array, shape (n_train,)
        Dataset image id of each training row.
    test_voxels : array, shape (n_test, V)
        Mean over the repeats of each test image.
    test_image_ids : int array, shape (n_test,)
    voxel_area : str array, shape (V,)
        NSD area name of each voxel (see :data:`otnsd.data.rois.AREAS`), "Other" when in none.
    """

    subject: int
    train_voxels: np.ndarray
    train_image_ids: np.ndarray
    test_voxels: np.ndarray
    test_image_ids: np.ndarray
    voxel_area: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        V = self.n_voxels
        if self.train_voxels.ndim != 3:
            raise ValueError(
                f"subject {self.subject}: train_voxels must be (n_train, n_repeats, V); "
                f"got shape {self.train_voxels.shape}"
            )
        if self.test_voxels.ndim != 2 or self.test_voxels.shape[1] != V:
            raise ValueError(
                f"subject {self.subject}: test_voxels must be (n_test, {V}); got {self.test_voxels.shape}"
            )
        if len(self.train_image_ids) != len(self.train_voxels) or len(self.test_image_ids) != len(self.test_voxels):
            raise ValueError(f"subject {self.subject}: one image id per row of voxels is needed")
        if self.voxel_area.shape != (V,):
            raise ValueError(
                f"subject {self.subject}: voxel_area must have one label per voxel ({V}); "
                f"got shape {self.voxel_area.shape}"
            )
        unknown = sorted(set(np.unique(self.voxel_area)) - set(AREAS))
        if unknown:
            raise ValueError(f"subject {self.subject}: unknown area labels {unknown}")

    @property
    def n_voxels(self) -> int:
        return int(self.train_voxels.shape[-1])

    @property
    def n_repeats(self) -> int:
        return int(self.train_voxels.shape[1])

    @cached_property
    def voxel_region(self) -> np.ndarray:
        """Region name (Vision, Body, Face, Place, Word, Other) of each voxel."""
        return np.array([AREA_REGION[a] for a in self.voxel_area])

    def region_mask(self, regions) -> np.ndarray:
        """Boolean mask over voxels: True for voxels in any of ``regions``."""
        return np.isin(self.voxel_region, check_regions(regions))

    def voxel_mask(self, regions=None) -> np.ndarray:
        """The voxels a model or an analysis of ``regions`` uses.

        Parameters
        ----------
        regions : str, sequence of str or None
            Region names (:data:`~otnsd.data.rois.REGIONS`); None means every voxel.

        Returns
        -------
        bool array, shape (V,)
        """
        if regions is None:
            return np.ones(self.n_voxels, dtype=bool)
        return self.region_mask(regions)

    def region_counts(self) -> dict[str, int]:
        return {r: int((self.voxel_region == r).sum()) for r in REGIONS}

    def area_counts(self) -> dict[str, int]:
        return {a: int((self.voxel_area == a).sum()) for a in AREAS}


class BrainImageDataset(ABC):
    """Base class of every dataset (simulated or real NSD).

    Subclasses provide the subjects' data, the image embeddings and the captions. Everything
    else (the subject cache, the fingerprint that keys every cache, the repr) is shared.

    Notes
    -----
    The hooks the rest of the package relies on:

    * Abstract, every dataset has them: :attr:`subjects`; :attr:`embedding_shape` (the encoder's
      output, ``otnsd.train``); :attr:`test_image_ids`; :meth:`image_embeddings` (training
      targets, captioner training, alignment metrics); :meth:`captions` (captioner training, the
      caption metrics' references); :meth:`config` (hashed into :attr:`fingerprint`);
      :meth:`_load_subject` (behind :meth:`subject`).
    * Provided: :meth:`subject` (training, analyses, captioner training); :attr:`fingerprint`,
      which keys the trained-model and captioner caches, so what :meth:`config` returns must not
      change while the data do not; :attr:`label` and :attr:`simulated` (labels of figures and
      tables, ``otnsd.plots``).
    * Optional, the default raises NotImplementedError naming the feature that needs it:
      :meth:`images` (real CLIP-S through ``OpenCLIPEncoder(images=dataset.images)``, the
      notebooks' ``clip_score_weights``, and CLIP feature extraction); :attr:`ground_truth`,
      :meth:`scene` and :meth:`factor_codes` (simulator only: notebooks 05-07 read them when
      ``simulated`` is True).
    * Optional and deliberately not defined here: ``encode_image(image_ids)`` and
      ``encode_text(texts)``, a CLIP stand-in built into the dataset ((n, D') arrays whose
      cosines play CLIP's; the simulator has one). :func:`otnsd.metrics.evaluate_embeddings`
      scores CLIP-S with the dataset itself when ``hasattr(dataset, "encode_image")``, so a
      default here would make every dataset claim one.
    """

    #: label written on every figure and table computed from this dataset
    label: str = "dataset"
    #: True for the simulator: every result on it is labelled "simulated"
    simulated: bool = False

    @property
    @abstractmethod
    def subjects(self) -> tuple[int, ...]:
        """NSD numbers of the subjects this dataset holds."""

    @property
    @abstractmethod
    def embedding_shape(self) -> tuple[int, int]:
        """(T, D): tokens per image embedding and their dimension."""

    @property
    @abstractmethod
    def test_image_ids(self) -> np.ndarray:
        """Ids of the test images, shared by all subjects."""

    @abstractmethod
    def _load_subject(self, subject: int) -> SubjectData:
        """Build one subject's data (called once per subject by :meth:`subject`)."""

    @abstractmethod
    def image_embeddings(self, image_ids) -> np.ndarray:
        """Target embeddings, float32 array of shape (len(image_ids), T, D)."""

    @abstractmethod
    def captions(self, image_ids) -> list[list[str]]:
        """Reference captions (five per image in NSD/COCO) for each id."""

    @abstractmethod
    def config(self) -> dict:
        """JSON-able description that identifies the data (used for cache keys)."""

    # ------------------------------------------------------------------------ optional hooks
    def images(self, image_ids) -> np.ndarray:
        """The stimulus images, uint8 array of shape (len(image_ids), H, W, 3).

        Needed by real CLIP-S (:class:`otnsd.metrics.OpenCLIPEncoder`) and by CLIP feature
        extraction; a dataset without pixels (the simulator) raises NotImplementedError.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no stimulus images: real CLIP-S (OpenCLIPEncoder, the notebooks' "
            "clip_score_weights) and CLIP feature extraction need a dataset with images, e.g. NSD"
        )

    @property
    def ground_truth(self):
        """What the simulator planted (:class:`~otnsd.data.simulated.GroundTruth`); simulator only."""
        raise NotImplementedError(
            f"{type(self).__name__} has no ground truth: only the simulator plants one (check "
            "dataset.simulated before comparing an analysis with the truth)"
        )

    def scene(self, image_id: int) -> dict:
        """The semantic factors of one image; simulator only."""
        raise NotImplementedError(
            f"{type(self).__name__} has no scene factors: only the simulator knows what its images show "
            "(check dataset.simulated first)"
        )

    def factor_codes(self, image_ids, factor: str) -> np.ndarray:
        """The numeric code of one semantic factor for each image, (n, k); simulator only."""
        raise NotImplementedError(
            f"{type(self).__name__} has no factor codes: probes of semantic factors need the simulator "
            "(check dataset.simulated first)"
        )

    # ----------------------------------------------------------------------------------------
    def subject(self, subject: int) -> SubjectData:
        """The subject's data, loaded once and kept."""
        if subject not in self.subjects:
            raise ValueError(f"subject {subject} is not in this dataset; it has subjects {list(self.subjects)}")
        cache = self.__dict__.setdefault("_subject_cache", {})
        if subject not in cache:
            cache[subject] = self._load_subject(subject)
        return cache[subject]

    @property
    def fingerprint(self) -> str:
        """Short stable hash of :meth:`config`; equal data, equal fingerprint."""
        blob = json.dumps(self.config(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def stimulus_fingerprint(self) -> str:
        """Hash of what the images, their embeddings and captions depend on, not the brain's
        responses: it keys what is trained on images alone (the captioner), so that datasets that
        differ only in noise or corrupted trials share it. Default: :attr:`fingerprint`."""
        return self.fingerprint

    def __repr__(self) -> str:
        T, D = self.embedding_shape
        return f"{type(self).__name__}(subjects={list(self.subjects)}, embeddings={T}x{D}, fingerprint={self.fingerprint})"
