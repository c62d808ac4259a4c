"""The :class:`SimulatedNSD` dataset, its configuration and its planted ground truth (see
:mod:`otnsd.data.simulated` for the generative model)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from ..base import BrainImageDataset, SubjectData
from ..rois import AREA_REGION, AREAS, NSDGENERAL_VOXELS, PAPER_SUBJECTS, REGIONS, SUBJECT1_AREA_COUNTS
from .grammar import parse_caption, scene_captions
from .scenes import ACTIONS, BLOCKS, EMBEDDING_WEIGHTS, encode_factors, sample_scenes

_MASK_DIM = len(ACTIONS)
_MASK_STD = 2.0


@dataclass(frozen=True)
class SimConfig:
    """Size and noise of the simulated NSD. The defaults build in a few seconds on a laptop."""

    seed: int = 0
    subjects: tuple[int, ...] = PAPER_SUBJECTS
    n_train: int = 2400  # training images per subject (each its own, as in NSD)
    n_test: int = 500  # test images, shared by all subjects
    n_repeats: int = 3
    voxel_scale: float = 0.25  # fraction of NSD's nsdgeneral voxel counts
    n_tokens: int = 16
    dim: int = 64
    hidden: int = 256
    code_noise: float = 1.0  # trial-to-trial noise in each region's code (std, codes have unit std)
    voxel_noise: float = 1.0  # independent noise per voxel and trial
    detail_noise: float = 0.3  # image detail in the embedding that no region encodes
    clip_gap: float = 1.3  # modality gap of the CLIP stand-in (relative to the pooled norm)
    # Corrupted training data, where a loss that may leave samples unmatched could win (off by default;
    # test trials stay clean). lapse_rate: share of training trials that carry no response to their
    # image (lapse_kind "noise": noise only; "other": another training image's response).
    # mislabel_rate: share of training rows whose responses are another training image's (labels
    # swapped in pairs, so the true image is in the training set).
    lapse_rate: float = 0.0
    lapse_kind: str = "noise"
    mislabel_rate: float = 0.0
    # Where the content sits among the tokens. "global": every token mixes the whole scene, in a
    # fixed order. "patches": objects, faces and text each become one token in a random slot per
    # image (the brain encodes what, not where), 3 further slots per image hold detail that no
    # region encodes, and the scene's other factors fill the remaining slots.
    token_layout: str = "global"
    # Control simulators, to test the analyses where the answer is not the default's planted one.
    # "null": no synergy, no redundancy, regions of about equal importance (each region encodes its
    # own factors, and the embedding weighs each region's factors alike). "permuted": the default's
    # codes moved to other regions (PERMUTED_ROLES): Vision encodes place (now the most important),
    # Place the low-level features and the mask (the least), Face and Word swap; the synergy moves
    # to Body + Place and the redundancies to Word + Body and Vision + Other. Images are unchanged.
    control: str = "none"

    def __post_init__(self):
        bad = [s for s in self.subjects if s not in NSDGENERAL_VOXELS]
        if bad:
            raise ValueError(f"subjects must be NSD subjects 1-8; got {bad}")
        for name in ("n_train", "n_test", "n_repeats", "n_tokens", "dim", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")
        if not 0 < self.voxel_scale <= 1:
            raise ValueError(f"voxel_scale must be in (0, 1]; got {self.voxel_scale}")
        for name in ("code_noise", "voxel_noise", "detail_noise", "clip_gap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        for name in ("lapse_rate", "mislabel_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]; got {getattr(self, name)}")
        if self.lapse_kind not in ("noise", "other"):
            raise ValueError(f"lapse_kind must be 'noise' or 'other'; got {self.lapse_kind!r}")
        if self.token_layout not in ("global", "patches"):
            raise ValueError(f"token_layout must be 'global' or 'patches'; got {self.token_layout!r}")
        if self.control not in CONTROLS:
            raise ValueError(f"control must be one of {', '.join(map(repr, CONTROLS))}; got {self.control!r}")
        if self.token_layout == "patches" and self.n_tokens < len(PATCH_FACTORS) + DETAIL_TOKENS:
            raise ValueError(f"token_layout='patches' needs n_tokens >= {len(PATCH_FACTORS) + DETAIL_TOKENS}; "
                             f"got {self.n_tokens}")


# fields whose default is left out of the dataset's config, so that adding them moved no fingerprint
_CORRUPTION_DEFAULTS = {"lapse_rate": 0.0, "lapse_kind": "noise", "mislabel_rate": 0.0}
_OPTIONAL_DEFAULTS = {**_CORRUPTION_DEFAULTS, "token_layout": "global", "control": "none"}
CONTROLS = ("none", "null", "permuted")
# control="permuted": region -> the default region whose code it encodes
PERMUTED_ROLES = {"Vision": "Place", "Place": "Vision", "Face": "Word", "Word": "Face", "Body": "Body", "Other": "Other"}
# control="null": each region's factors weigh alike in the embedding (sum of squared weights 1 per region)
NULL_EMBEDDING_WEIGHTS = {"place": 1.0, "objects": 1.0, "color": math.sqrt(0.5), "people": math.sqrt(0.5),
                          "action": math.sqrt(0.5), "faces": 1.0, "text": 1.0, "lowlevel": math.sqrt(0.5)}
# token_layout="patches": the factors that become one token each, and the undecodable detail tokens
PATCH_FACTORS = ("objects", "faces", "text")
DETAIL_TOKENS = 3
# fields that change the brain's responses only, not the images, embeddings or captions
_BRAIN_FIELDS = ("n_repeats", "voxel_scale", "code_noise", "voxel_noise", *_CORRUPTION_DEFAULTS)

# The simulator's difficulty presets: SimConfig fields over the defaults (open_dataset's
# ``difficulty``). "easy": the defaults, where the MSE model reaches 79% of the ceiling's CIDEr.
# "nsd": trial noise raised until the MSE model reaches about the share the paper's MSE model
# reaches on real NSD (UMBRAE(MSE)-S1 CIDEr 51.50 of Shikra-w/img 161.43, quoted: 0.32); measured
# by benchmarks/calibrate_difficulty.py.
DIFFICULTIES = {"easy": {}, "nsd": {"code_noise": 3.0, "voxel_noise": 2.0}}


@dataclass(frozen=True)
class GroundTruth:
    """What the simulator planted, for checking analyses against."""

    region_factors: dict[str, tuple[str, ...]]
    redundant: dict[str, tuple[str, ...]]
    synergistic: dict[str, tuple[str, ...]]
    embedding_weights: dict[str, float]
    region_importance: dict[str, float] = field(default_factory=dict)

    def importance_ranking(self) -> list[str]:
        """Regions from most to least important."""
        return sorted(self.region_importance, key=self.region_importance.get, reverse=True)


_NULL_REGION_FACTORS = {
    "Vision": ("lowlevel", "color"),
    "Place": ("place",),
    "Face": ("faces",),
    "Body": ("people", "action"),
    "Word": ("text",),
    "Other": ("objects",),
}
_REGION_FACTORS = {
    "Vision": ("lowlevel", "mask", "color"),
    "Place": ("place",),
    "Face": ("faces", "people presence"),
    "Body": ("people", "action+mask"),
    "Word": ("text",),
    "Other": ("objects", "place"),
}


class SimulatedNSD(BrainImageDataset):
    """Simulated NSD (see :mod:`otnsd.data.simulated` for the generative model).

    Parameters
    ----------
    seed : int
        Everything is a deterministic function of the seed and the other parameters.
    **kwargs
        Any field of :class:`SimConfig` (sizes, noise levels, subjects).

    Examples
    --------
    >>> sim = SimulatedNSD(seed=0)
    >>> s1 = sim.subject(1)
    >>> s1.train_voxels.shape, sim.image_embeddings(s1.test_image_ids).shape  # doctest: +SKIP
    ((2400, 3, 3931), (500, 16, 64))
    """

    @property
    def label(self) -> str:
        return "simulated NSD" + ("" if self.cfg.control == "none" else f" ({self.cfg.control} control)")
    simulated = True

    def __init__(self, seed: int = 0, **kwargs):
        self.cfg = SimConfig(seed=seed, **kwargs)
        c = self.cfg
        self.n_images = c.n_test + c.n_train * len(c.subjects)
        rng = np.random.default_rng([c.seed, 0])
        self._scenes = sample_scenes(rng, self.n_images)
        raw = encode_factors(self._scenes)
        # Standardise each factor dimension over all images; the text encoder reuses these stats.
        self._mean = {k: v.mean(0) for k, v in raw.items()}
        self._std = {k: np.where(v.std(0) > 0, v.std(0), 1.0) for k, v in raw.items()}
        self._codes = {k: (raw[k] - self._mean[k]) / self._std[k] for k in raw}
        self._mask = rng.normal(0, _MASK_STD, size=(self.n_images, _MASK_DIM))
        self._encoder = _RandomImageEncoder(np.random.default_rng([c.seed, 1]), c, self._embedding_weights)
        detail = np.random.default_rng([c.seed, 2]).normal(0, c.detail_noise, (self.n_images, c.n_tokens, c.dim))
        self.patch_slots = None  # token_layout="patches": (n_images, 3 + 3) slots of the patches, then of the detail
        if c.token_layout == "patches":
            self._patches = _PatchEncoder(np.random.default_rng([c.seed, 7]), c)
            layout = np.random.default_rng([c.seed, 8])
            self.patch_slots = np.stack([layout.permutation(c.n_tokens)[: len(PATCH_FACTORS) + DETAIL_TOKENS]
                                         for _ in range(self.n_images)])
        self._embeddings = (self._tokens(self._codes, self.patch_slots, layout_rng=np.random.default_rng([c.seed, 9]))
                            + detail).astype(np.float32)

    # ------------------------------------------------------------------------------ dataset API
    @property
    def subjects(self) -> tuple[int, ...]:
        return tuple(self.cfg.subjects)

    @property
    def embedding_shape(self) -> tuple[int, int]:
        return (self.cfg.n_tokens, self.cfg.dim)

    @property
    def test_image_ids(self) -> np.ndarray:
        return np.arange(self.cfg.n_test)

    def train_image_ids(self, subject: int) -> np.ndarray:
        k = self.subjects.index(subject)
        start = self.cfg.n_test + k * self.cfg.n_train
        return np.arange(start, start + self.cfg.n_train)

    def config(self) -> dict:
        cfg = {k: v for k, v in asdict(self.cfg).items() if _OPTIONAL_DEFAULTS.get(k, object()) != v}
        return {"kind": "SimulatedNSD", "version": 1, **cfg}

    @property
    def stimulus_fingerprint(self) -> str:
        stimuli = {k: v for k, v in self.config().items() if k not in _BRAIN_FIELDS}
        if stimuli.get("control") == "permuted":  # moves codes between regions: the images stay
            del stimuli["control"]
        return hashlib.sha256(json.dumps(stimuli, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def image_embeddings(self, image_ids) -> np.ndarray:
        return self._embeddings[self._ids(image_ids)]

    def captions(self, image_ids) -> list[list[str]]:
        ids = self._ids(image_ids)
        return [scene_captions(self._scenes[i], np.random.default_rng([self.cfg.seed, 3, int(i)])) for i in ids]

    def scene(self, image_id: int) -> dict:
        """The factors of one image, as a readable dict."""
        return dict(self._scenes[self._ids([image_id])[0]])

    # ------------------------------------------------------------------------------ CLIP stand-in
    def encode_image(self, image_ids) -> np.ndarray:
        """CLIP-S image side, (n, D + 2): the token-pooled embedding plus an image-only offset.

        The two extra dimensions hold a constant offset per modality (image, text), scaled by
        ``clip_gap``: like CLIP's modality gap, it keeps image-text cosines near CLIP's range
        (about 0.3 for a matching caption) while text-text cosines stay high.
        """
        pooled = self.image_embeddings(image_ids).mean(1)
        return self._with_gap(pooled, 0)

    def encode_text(self, captions: list[str]) -> np.ndarray:
        """CLIP-S text side, (n, D + 2): a caption parsed to the factor code, through the image
        network, pooled, plus the text-only offset (see :meth:`encode_image`)."""
        codes = {k: np.zeros((len(captions), w)) for k, w in BLOCKS.items()}
        for i, text in enumerate(captions):
            for k, raw in parse_caption(text).items():
                codes[k][i] = (raw - self._mean[k]) / self._std[k]
        # a caption does not say where things are: patches in the first slots, no detail
        slots = None if self.patch_slots is None else np.tile(np.arange(self.patch_slots.shape[1]), (len(captions), 1))
        return self._with_gap(self._tokens(codes, slots).mean(1), 1)

    @cached_property
    def _gap_scale(self) -> float:
        return self.cfg.clip_gap * float(np.linalg.norm(self._embeddings.mean(1), axis=1).mean())

    def _with_gap(self, pooled: np.ndarray, modality: int) -> np.ndarray:
        gap = np.zeros((len(pooled), 2))
        gap[:, modality] = self._gap_scale
        return np.hstack([pooled, gap]).astype(np.float32)

    def factor_codes(self, image_ids, factor: str) -> np.ndarray:
        """The standardised numeric code of one semantic factor (``place``, ``objects``, ``color``,
        ``people``, ``action``, ``faces``, ``text``, ``lowlevel``) for each image: (n, k)."""
        if factor not in self._codes:
            raise ValueError(f"unknown factor {factor!r}; choose one of {', '.join(self._codes)}")
        return self._codes[factor][self._ids(image_ids)]

    # ------------------------------------------------------------------------------ brain
    def region_codes(self, image_ids) -> dict[str, np.ndarray]:
        """Noiseless code each region encodes for each image (what its voxels mix)."""
        ids = self._ids(image_ids)
        c, m = self._codes, self._mask[ids] / _MASK_STD
        if self.cfg.control == "null":  # each factor in one region, no mask, no shared presence
            return {"Vision": np.hstack([c["lowlevel"][ids], c["color"][ids]]), "Place": c["place"][ids],
                    "Face": c["faces"][ids], "Body": np.hstack([c["people"][ids], c["action"][ids]]),
                    "Word": c["text"][ids], "Other": c["objects"][ids]}
        people_presence = c["people"][ids][:, 1:2]
        codes = {
            "Vision": np.hstack([c["lowlevel"][ids], m, 0.4 * c["color"][ids]]),
            "Place": c["place"][ids],
            "Face": np.hstack([c["faces"][ids], people_presence]),
            "Body": np.hstack([c["people"][ids], c["action"][ids] + m * _MASK_STD]),
            "Word": c["text"][ids],
            "Other": np.hstack([c["objects"][ids], 0.4 * c["place"][ids]]),
        }
        if self.cfg.control == "permuted":
            return {r: codes[PERMUTED_ROLES[r]] for r in codes}
        return codes

    def area_sizes(self, subject: int) -> dict[str, int]:
        """Voxels per area for a subject at this dataset's ``voxel_scale``."""
        c = self.cfg
        total = max(len(REGIONS), round(NSDGENERAL_VOXELS[subject] * c.voxel_scale))
        ratio = NSDGENERAL_VOXELS[subject] / NSDGENERAL_VOXELS[1]
        jitter = np.random.default_rng([c.seed, 4, subject]).uniform(0.85, 1.15, len(AREAS))
        sizes = {}
        for area, j in zip(AREAS, jitter):
            n1 = SUBJECT1_AREA_COUNTS[area]
            if area == "Other" or n1 == 0:
                sizes[area] = 0
                continue
            scaled = n1 * c.voxel_scale * (1.0 if subject == 1 else ratio * j)
            sizes[area] = max(1, round(scaled))
        sizes["Other"] = max(1, total - sum(sizes.values()))
        return sizes

    def _load_subject(self, subject: int) -> SubjectData:
        c = self.cfg
        rng = np.random.default_rng([c.seed, 1000 + subject])
        sizes = self.area_sizes(subject)
        area = np.concatenate([np.full(n, a, dtype=object) for a, n in sizes.items()]).astype(str)
        order = rng.permutation(len(area))  # regions interleave, as in a real voxel order
        area = area[order]
        train_ids, test_ids = self.train_image_ids(subject), self.test_image_ids

        regions = np.array([AREA_REGION[a] for a in area])
        code_dims = {r: v.shape[1] for r, v in self.region_codes(train_ids[:1]).items()}
        mixing = {}
        for r in REGIONS:
            k = code_dims[r]
            n_r = int((regions == r).sum())
            W = rng.normal(0, 1 / math.sqrt(k), size=(k, n_r))
            gain = rng.uniform(0.3, 1.0, size=n_r)
            if r == "Other":  # part of "Other" responds to nothing the stimuli vary
                gain[rng.random(n_r) < 0.3] = 0.0
            mixing[r] = (W * gain).astype(np.float32)

        def responses(ids, stimulus=None):
            # stimulus (n, repeats): the image each trial responds to (-1: none); default its own
            codes = self.region_codes(ids)
            if stimulus is not None:
                driven = self.region_codes(np.where(stimulus < 0, ids[:, None], stimulus).ravel())
                codes = {r: v.reshape(len(ids), c.n_repeats, -1) * (stimulus >= 0)[..., None] for r, v in driven.items()}
            out = np.empty((len(ids), c.n_repeats, len(area)), dtype=np.float32)
            for r in REGIONS:
                cols = np.flatnonzero(regions == r)
                code = (codes[r] if stimulus is not None else codes[r][:, None, :]) + c.code_noise * rng.standard_normal(
                    (len(ids), c.n_repeats, codes[r].shape[-1])
                )
                out[:, :, cols] = code.astype(np.float32) @ mixing[r]
            out += c.voxel_noise * rng.standard_normal(out.shape, dtype=np.float32)
            return out

        corrupt = np.random.default_rng([c.seed, 6, subject])  # its own stream: clean data draw as before
        stimulus, meta = None, {"simulated": True}
        if c.lapse_rate > 0:
            lapsed = corrupt.random((len(train_ids), c.n_repeats)) < c.lapse_rate
            other = train_ids[(np.arange(len(train_ids))[:, None] + corrupt.integers(1, len(train_ids), lapsed.shape))
                              % len(train_ids)]
            stimulus = np.where(lapsed, -1 if c.lapse_kind == "noise" else other, train_ids[:, None])
            meta["lapsed"] = lapsed
        train = responses(train_ids, stimulus)
        test = responses(test_ids).mean(1)
        if c.mislabel_rate > 0:
            rows = corrupt.permutation(len(train_ids))[: 2 * int(c.mislabel_rate * len(train_ids) / 2)]
            a, b = rows[: len(rows) // 2], rows[len(rows) // 2 :]
            train[np.concatenate([a, b])] = train[np.concatenate([b, a])]
            true_ids = train_ids.copy()
            true_ids[np.concatenate([a, b])] = train_ids[np.concatenate([b, a])]
            meta["true_image_ids"] = true_ids  # the image each row's responses belong to
        return SubjectData(
            subject=subject,
            train_voxels=train,
            train_image_ids=train_ids,
            test_voxels=test,
            test_image_ids=test_ids,
            voxel_area=area,
            meta=meta,
        )

    # ------------------------------------------------------------------------------ truth
    @cached_property
    def ground_truth(self) -> GroundTruth:
        factors = dict(_REGION_FACTORS)
        redundant = {"people presence": ("Face", "Body"), "place": ("Place", "Other")}
        synergistic = {"action": ("Body", "Vision")}
        if self.cfg.control == "null":
            factors, redundant, synergistic = dict(_NULL_REGION_FACTORS), {}, {}
        elif self.cfg.control == "permuted":
            region_of = {role: r for r, role in PERMUTED_ROLES.items()}  # default region -> where its code went
            factors = {r: _REGION_FACTORS[PERMUTED_ROLES[r]] for r in REGIONS}
            redundant = {f: tuple(region_of[r] for r in pair) for f, pair in redundant.items()}
            synergistic = {f: tuple(region_of[r] for r in pair) for f, pair in synergistic.items()}
        return GroundTruth(
            region_factors=factors,
            redundant=redundant,
            synergistic=synergistic,
            embedding_weights=dict(self._embedding_weights),
            region_importance=self._shapley_importance(),
        )

    @cached_property
    def _embedding_weights(self) -> dict[str, float]:
        return NULL_EMBEDDING_WEIGHTS if self.cfg.control == "null" else EMBEDDING_WEIGHTS

    def _shapley_importance(self, n: int = 4000) -> dict[str, float]:
        """Shapley value, over regions, of the embedding variance their test responses explain.

        The value of a set of regions is the R^2 of the best linear map from their codes, with the
        code noise of a test trial (a mean over the repeats), to the flattened image embedding.
        Voxel noise is left out: it averages away over a region's many voxels.
        """
        ids = np.arange(min(n, self.n_images))
        rng = np.random.default_rng([self.cfg.seed, 5])
        noise = self.cfg.code_noise / math.sqrt(self.cfg.n_repeats)
        codes = {r: v + noise * rng.standard_normal(v.shape) for r, v in self.region_codes(ids).items()}
        Y = self._embeddings[ids].reshape(len(ids), -1).astype(np.float64)
        Y = Y - Y.mean(0)
        cols, X = {}, []
        for r in REGIONS:
            cols[r] = np.arange(sum(x.shape[1] for x in X), sum(x.shape[1] for x in X) + codes[r].shape[1])
            X.append(codes[r] - codes[r].mean(0))
        X = np.hstack(X)
        gram, cross, total = X.T @ X, X.T @ Y, (Y**2).sum()

        def r2(subset):
            # R^2 of least squares on the subset's columns: tr(M' G^-1 M) / tr(Y'Y)
            if not subset:
                return 0.0
            idx = np.concatenate([cols[r] for r in subset])
            M = cross[idx]
            return float((M * np.linalg.solve(gram[np.ix_(idx, idx)], M)).sum() / total)

        value = {s: r2(s) for k in range(len(REGIONS) + 1) for s in itertools.combinations(REGIONS, k)}
        n_r = len(REGIONS)
        shapley = {}
        for r in REGIONS:
            others = [q for q in REGIONS if q != r]
            phi = 0.0
            for k in range(n_r):
                w = math.factorial(k) * math.factorial(n_r - k - 1) / math.factorial(n_r)
                for s in itertools.combinations(others, k):
                    with_r = tuple(q for q in REGIONS if q in s or q == r)
                    phi += w * (value[with_r] - value[s])
            shapley[r] = float(phi)
        return shapley

    # ------------------------------------------------------------------------------ helpers
    def _weighted_code(self, codes: dict[str, np.ndarray], leave_out=()) -> np.ndarray:
        weights = self._embedding_weights
        return np.hstack([(k not in leave_out) * weights[k] * codes[k] / math.sqrt(w) for k, w in BLOCKS.items()])

    def _tokens(self, codes: dict[str, np.ndarray], slots=None, layout_rng=None) -> np.ndarray:
        """(n, T, D) tokens of factor codes; ``slots`` (token_layout="patches"): where each image's
        patches and detail tokens go (detail drawn from ``layout_rng``, zero without it)."""
        if slots is None:
            return self._encoder(self._weighted_code(codes))
        tokens = self._encoder(self._weighted_code(codes, leave_out=PATCH_FACTORS))
        rows = np.arange(len(tokens))[:, None]
        tokens[rows, slots[:, : len(PATCH_FACTORS)]] = self._patches(codes)
        detail = np.zeros((len(tokens), DETAIL_TOKENS, tokens.shape[-1]))
        if layout_rng is not None:
            detail = layout_rng.normal(0, 1, detail.shape)
        tokens[rows, slots[:, len(PATCH_FACTORS):]] = detail
        return tokens

    def _ids(self, image_ids) -> np.ndarray:
        ids = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_images):
            raise ValueError(f"image ids must lie in [0, {self.n_images}); got {ids.min()}..{ids.max()}")
        return ids


BLOCK_DIM_OF_REGION = {
    "Vision": BLOCKS["lowlevel"] + _MASK_DIM + BLOCKS["color"],
    "Place": BLOCKS["place"],
    "Face": BLOCKS["faces"] + 1,
    "Body": BLOCKS["people"] + BLOCKS["action"],
    "Word": BLOCKS["text"],
    "Other": BLOCKS["objects"] + BLOCKS["place"],
}


class _PatchEncoder:
    """token_layout="patches": one fixed random tanh network per factor of PATCH_FACTORS, code -> a
    (D,) token of about unit variance; (n, len(PATCH_FACTORS), D) for n images."""

    def __init__(self, rng: np.random.Generator, c: SimConfig, hidden: int = 64):
        self.nets = {k: (rng.normal(0, 1 / math.sqrt(BLOCKS[k]), (BLOCKS[k], hidden)), rng.normal(0, 0.3, hidden),
                         rng.normal(0, 1 / math.sqrt(hidden), (hidden, c.dim)), rng.normal(0, 0.5, c.dim))
                     for k in PATCH_FACTORS}

    def __call__(self, codes: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([np.tanh(codes[k] @ A + b) @ B * 2.0 + pos for k, (A, b, B, pos) in self.nets.items()], axis=1)


class _RandomImageEncoder:
    """Fixed random two-layer tanh network: factor code -> (T, D) tokens."""

    def __init__(self, rng: np.random.Generator, c: SimConfig, weights: dict[str, float]):
        z_dim = sum(BLOCKS.values())
        z_var = sum(w**2 for w in weights.values())
        self.A = rng.normal(0, 1.0 / math.sqrt(z_var), size=(z_dim, c.hidden))
        self.bias = rng.normal(0, 0.3, size=c.hidden)
        self.B = rng.normal(0, 1.0 / math.sqrt(c.hidden), size=(c.hidden, c.n_tokens * c.dim))
        self.pos = rng.normal(0, 0.5, size=c.n_tokens * c.dim)
        self.shape = (c.n_tokens, c.dim)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        h = np.tanh(z @ self.A + self.bias)
        # rescale so token features have about unit variance across images
        out = (h @ self.B) * 2.0 + self.pos
        return out.reshape(len(z), *self.shape)
