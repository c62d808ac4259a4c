r"""The simulated NSD: a deterministic stand-in for NSD, CLIP and COCO captions, with known truth.

Nothing here is real data. The simulator exists so that every notebook runs on a laptop with no
download, and so that every analysis can be checked against a ground truth that real NSD does not
have. Everything computed on it is labelled "simulated".

Generative model
----------------
**Scenes.** Each image is a scene drawn from semantic factors:

* ``place`` — one of 8 place categories (kitchen, street, beach, ...), every scene has one;
* ``objects`` — one or two of 12 object kinds (dog, car, pizza, ...) with counts 1-3, drawn
  mostly from objects typical of the place, and the ``color`` of the main object;
* ``people`` — 0-3 people and, when present, their ``action`` (standing, riding, ...);
* ``faces`` — how many of the people show their face;
* ``text`` — whether the scene holds text, and of what kind (stop sign, book, ...);
* ``lowlevel`` — 16 image-specific low-level features (contrast, orientation energy, ...) with
  no semantic content.

**Captions.** Five COCO-style captions per scene from varied templates and synonyms; each
mentions a random subset of the scene's facts, as COCO annotators do.

**Image embedding (the CLIP stand-in).** The factors are coded numerically (one-hot places,
object counts, ...), standardised, weighted by how much each matters to the embedding
(place 1.8, objects 1.1, people 1.0, text 0.9, faces 0.8, action 0.7, color 0.4, lowlevel 0.35)
and passed through a fixed random two-layer tanh network to T x D tokens. Image-specific detail
that no brain region encodes is added (``detail_noise``). A matching "text encoder" parses a
caption back into the same factor code (low-level features unknown, unmentioned factors at their
mean) and passes it through the same network, mean-pooled over tokens; the cosine between the
pooled image embedding and a caption's embedding plays CLIP-S's part.

**Voxels.** Each region encodes a code built from some factors (``GroundTruth.region_factors``):

=======  ==============================================================
Vision   low-level features, the synergy mask ``u``, a little color
Place    place category
Face     faces, and whether people are present
Body     people count and presence, action + ``u`` (synergy with Vision)
Word     text presence and kind
Other    objects, and place (weaker)
=======  ==============================================================

*Redundancy*: people presence is encoded by Face and Body; place by Place and Other.
*Synergy*: the people's action reaches the brain only as ``action + u`` in Body, where ``u`` is a
per-image random mask (variance 4) that Vision encodes: either region alone carries little linear
information on the action (R^2 = 0.2 for Body), the two together carry all of it.

Each voxel responds to a random mixture of its region's code with a random gain; a trial's
response adds trial-to-trial noise in code space (``code_noise``, shared by the region's voxels,
so it cannot be averaged away over voxels) and independent voxel noise (``voxel_noise``). Every
image is shown ``n_repeats`` times; training rows keep the repeats apart, test rows average them.

**Subjects.** Subjects 1, 2, 5, 7 with NSD's nsdgeneral voxel counts times ``voxel_scale``;
subject 1's areas in the proportions of the paper's Table 2, the other subjects' jittered around
them. Each subject sees its own training images and the shared test images, with voxels tuned
differently (its own mixing weights) and in its own random voxel order.

**Ground truth.** :attr:`SimulatedNSD.ground_truth` says what each region encodes, which factors are
redundant or synergistic, and the true importance of each region: the Shapley value of the
variance of the image embedding that the regions' noiseless codes explain linearly.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from .base import BrainImageDataset, SubjectData
from .rois import (
    AREA_REGION,
    AREAS,
    NSDGENERAL_VOXELS,
    PAPER_SUBJECTS,
    REGIONS,
    SUBJECT1_AREA_COUNTS,
)

PLACES = ("kitchen", "street", "beach", "living room", "park", "bathroom", "bedroom", "field")
OBJECTS = ("dog", "cat", "car", "bus", "bicycle", "pizza", "cake", "umbrella", "surfboard", "bench", "horse", "laptop")
COLORS = ("red", "blue", "white", "black", "green", "yellow")
ACTIONS = ("standing", "sitting", "walking", "riding", "holding")
TEXTS = ("street sign", "stop sign", "book", "shop sign")

_PLACE_P = np.array([0.18, 0.2, 0.1, 0.14, 0.14, 0.06, 0.08, 0.1])
_TYPICAL = {
    "kitchen": ("pizza", "cake", "cat", "laptop"),
    "street": ("car", "bus", "bicycle", "umbrella", "bench"),
    "beach": ("surfboard", "umbrella", "dog"),
    "living room": ("cat", "dog", "laptop", "cake"),
    "park": ("dog", "bench", "bicycle", "horse"),
    "bathroom": ("cat",),
    "bedroom": ("laptop", "cat", "dog"),
    "field": ("horse", "dog", "bicycle"),
}
_PLURAL = {"bus": "buses", "bench": "benches"}
_PLACE_SYN = {
    "kitchen": ("kitchen",),
    "street": ("street", "city street", "road"),
    "beach": ("beach", "sandy beach", "shore"),
    "living room": ("living room", "lounge"),
    "park": ("park", "grassy park"),
    "bathroom": ("bathroom",),
    "bedroom": ("bedroom",),
    "field": ("field", "open field", "meadow"),
}
_NUM = {1: "a", 2: "two", 3: "three"}
_NUM_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "several": 3, "group": 3}
_ACTION_PHRASE = {
    "standing": ("standing", "standing around"),
    "sitting": ("sitting", "sitting down"),
    "walking": ("walking", "walking along"),
    "riding": ("riding", "riding along"),
    "holding": ("holding something", "holding a bag"),
}

# Factor blocks of the code, their widths and their weight in the image embedding.
BLOCKS: dict[str, int] = {
    "place": len(PLACES),
    "objects": len(OBJECTS),
    "color": len(COLORS),
    "people": 2,  # count, presence
    "action": len(ACTIONS),
    "faces": 2,  # count, presence
    "text": 1 + len(TEXTS),  # presence, kind
    "lowlevel": 16,
}
EMBEDDING_WEIGHTS: dict[str, float] = {
    "place": 1.8, "objects": 1.1, "color": 0.4, "people": 1.0,
    "action": 0.7, "faces": 0.8, "text": 0.9, "lowlevel": 0.35,
}  # fmt: skip
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


_REGION_FACTORS = {
    "Vision": ("lowlevel", "mask", "color"),
    "Place": ("place",),
    "Face": ("faces", "people presence"),
    "Body": ("people", "action+mask"),
    "Word": ("text",),
    "Other": ("objects", "place"),
}


class SimulatedNSD(BrainImageDataset):
    """Simulated NSD (see the module docstring for the generative model).

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

    label = "simulated NSD"
    simulated = True

    def __init__(self, seed: int = 0, **kwargs):
        self.cfg = SimConfig(seed=seed, **kwargs)
        c = self.cfg
        self.n_images = c.n_test + c.n_train * len(c.subjects)
        rng = np.random.default_rng([c.seed, 0])
        self._scenes = _sample_scenes(rng, self.n_images)
        raw = _encode_factors(self._scenes)
        # Standardise each factor dimension over all images; the text encoder reuses these stats.
        self._mean = {k: v.mean(0) for k, v in raw.items()}
        self._std = {k: np.where(v.std(0) > 0, v.std(0), 1.0) for k, v in raw.items()}
        self._codes = {k: (raw[k] - self._mean[k]) / self._std[k] for k in raw}
        self._mask = rng.normal(0, _MASK_STD, size=(self.n_images, _MASK_DIM))
        self._encoder = _RandomImageEncoder(np.random.default_rng([c.seed, 1]), c)
        detail = np.random.default_rng([c.seed, 2]).normal(0, c.detail_noise, (self.n_images, c.n_tokens, c.dim))
        self._embeddings = (self._encoder(self._weighted_code(self._codes)) + detail).astype(np.float32)

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
        return {"kind": "SimulatedNSD", "version": 1, **asdict(self.cfg)}

    def image_embeddings(self, image_ids) -> np.ndarray:
        return self._embeddings[self._ids(image_ids)]

    def captions(self, image_ids) -> list[list[str]]:
        ids = self._ids(image_ids)
        return [_captions(self._scenes[i], np.random.default_rng([self.cfg.seed, 3, int(i)])) for i in ids]

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
            for k, raw in _parse_caption(text).items():
                codes[k][i] = (raw - self._mean[k]) / self._std[k]
        return self._with_gap(self._encoder(self._weighted_code(codes)).mean(1), 1)

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
        people_presence = c["people"][ids][:, 1:2]
        return {
            "Vision": np.hstack([c["lowlevel"][ids], m, 0.4 * c["color"][ids]]),
            "Place": c["place"][ids],
            "Face": np.hstack([c["faces"][ids], people_presence]),
            "Body": np.hstack([c["people"][ids], c["action"][ids] + m * _MASK_STD]),
            "Word": c["text"][ids],
            "Other": np.hstack([c["objects"][ids], 0.4 * c["place"][ids]]),
        }

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
        mixing = {}
        for r in REGIONS:
            k = BLOCK_DIM_OF_REGION[r]
            n_r = int((regions == r).sum())
            W = rng.normal(0, 1 / math.sqrt(k), size=(k, n_r))
            gain = rng.uniform(0.3, 1.0, size=n_r)
            if r == "Other":  # part of "Other" responds to nothing the stimuli vary
                gain[rng.random(n_r) < 0.3] = 0.0
            mixing[r] = (W * gain).astype(np.float32)

        def responses(ids):
            codes = self.region_codes(ids)
            out = np.empty((len(ids), c.n_repeats, len(area)), dtype=np.float32)
            for r in REGIONS:
                cols = np.flatnonzero(regions == r)
                code = codes[r][:, None, :] + c.code_noise * rng.standard_normal(
                    (len(ids), c.n_repeats, codes[r].shape[1])
                )
                out[:, :, cols] = code.astype(np.float32) @ mixing[r]
            out += c.voxel_noise * rng.standard_normal(out.shape, dtype=np.float32)
            return out

        train = responses(train_ids)
        test = responses(test_ids).mean(1)
        return SubjectData(
            subject=subject,
            train_voxels=train,
            train_image_ids=train_ids,
            test_voxels=test,
            test_image_ids=test_ids,
            voxel_area=area,
            meta={"simulated": True},
        )

    # ------------------------------------------------------------------------------ truth
    @cached_property
    def ground_truth(self) -> GroundTruth:
        return GroundTruth(
            region_factors=dict(_REGION_FACTORS),
            redundant={"people presence": ("Face", "Body"), "place": ("Place", "Other")},
            synergistic={"action": ("Body", "Vision")},
            embedding_weights=dict(EMBEDDING_WEIGHTS),
            region_importance=self._shapley_importance(),
        )

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
    def _weighted_code(self, codes: dict[str, np.ndarray]) -> np.ndarray:
        return np.hstack([EMBEDDING_WEIGHTS[k] * codes[k] / math.sqrt(w) for k, w in BLOCKS.items()])

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


class _RandomImageEncoder:
    """Fixed random two-layer tanh network: factor code -> (T, D) tokens."""

    def __init__(self, rng: np.random.Generator, c: SimConfig):
        z_dim = sum(BLOCKS.values())
        z_var = sum(w**2 for w in EMBEDDING_WEIGHTS.values())
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


# ---------------------------------------------------------------------------------- scenes
def _sample_scenes(rng: np.random.Generator, n: int) -> list[dict]:
    scenes = []
    for _ in range(n):
        place = PLACES[rng.choice(len(PLACES), p=_PLACE_P)]
        n_obj = 1 if rng.random() < 0.6 else 2
        objects = []
        while len(objects) < n_obj:
            pool = _TYPICAL[place] if rng.random() < 0.8 else OBJECTS
            o = pool[rng.integers(len(pool))]
            if o not in [x for x, _ in objects]:
                objects.append((o, int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))))
        n_people = int(rng.choice(4, p=[0.45, 0.3, 0.15, 0.1]))
        action = ACTIONS[rng.integers(len(ACTIONS))] if n_people else None
        n_faces = n_people if (n_people and rng.random() < 0.6) else 0
        has_text = rng.random() < (0.5 if place == "street" else 0.2)
        scenes.append(
            {
                "place": place,
                "objects": objects,
                "color": COLORS[rng.integers(len(COLORS))],
                "people": n_people,
                "action": action,
                "faces": n_faces,
                "text": TEXTS[rng.integers(len(TEXTS))] if has_text else None,
                "lowlevel": rng.normal(size=BLOCKS["lowlevel"]),
            }
        )
    return scenes


def _factor_vectors(s: dict) -> dict[str, np.ndarray]:
    v = {k: np.zeros(w) for k, w in BLOCKS.items()}
    v["place"][PLACES.index(s["place"])] = 1
    for o, count in s["objects"]:
        v["objects"][OBJECTS.index(o)] = 1 + 0.3 * (count - 1)
    v["color"][COLORS.index(s["color"])] = 1
    v["people"][:] = (s["people"] / 1.5, float(s["people"] > 0))
    if s["action"]:
        v["action"][ACTIONS.index(s["action"])] = 1
    v["faces"][:] = (s["faces"] / 1.5, float(s["faces"] > 0))
    if s["text"]:
        v["text"][0] = 1
        v["text"][1 + TEXTS.index(s["text"])] = 1
    v["lowlevel"][:] = s["lowlevel"]
    return v


def _encode_factors(scenes: list[dict]) -> dict[str, np.ndarray]:
    vecs = [_factor_vectors(s) for s in scenes]
    return {k: np.stack([v[k] for v in vecs]) for k in BLOCKS}


# ---------------------------------------------------------------------------------- captions
def _noun(obj: str, count: int) -> str:
    return obj if count == 1 else _PLURAL.get(obj, obj + "s")


def _captions(s: dict, rng: np.random.Generator) -> list[str]:
    def pick(options):
        return options[rng.integers(len(options))]

    def obj_phrase(with_color):
        o, count = s["objects"][0]
        color = f"{s['color']} " if with_color else ""
        first = f"{_NUM[count]} {color}{_noun(o, count)}"
        if count == 1 and not color and o[0] in "aeiou":
            first = "an " + first[2:]
        if len(s["objects"]) > 1 and rng.random() < 0.6:
            o2, c2 = s["objects"][1]
            first += f" and {_NUM[c2]} {_noun(o2, c2)}"
        return first

    def people_phrase():
        n = s["people"]
        if n == 1:
            return pick(("a man", "a woman", "a person"))
        return pick(("two people", "two men")) if n == 2 else pick(("three people", "a group of people"))

    place = pick(_PLACE_SYN[s["place"]])
    out = []
    templates = list(range(7))
    rng.shuffle(templates)
    for t in templates:
        color = rng.random() < 0.5
        obj = obj_phrase(color)
        people = s["people"] > 0 and rng.random() < 0.8
        text = f" near a {s['text']}" if s["text"] and rng.random() < 0.7 else ""
        face = " smiling at the camera" if s["faces"] and rng.random() < 0.7 else ""
        action = pick(_ACTION_PHRASE[s["action"]]) if s["action"] else ""
        if t == 0:
            c = f"{obj} in a {place}{text}"
        elif t == 1 and people:
            c = f"{people_phrase()}{face} {action} next to {obj} in a {place}"
        elif t == 2:
            c = f"a view of a {place} with {obj}{text}"
        elif t == 3 and people:
            c = f"{people_phrase()} {action} in a {place}{face}{text}"
        elif t == 4:
            c = f"a photo of {obj} in the {place}"
        elif t == 5:
            c = f"{place} scene showing {obj}" + (f" and {people_phrase()} {action}" if people else "")
        else:
            verb = "is" if s["objects"][0][1] == 1 else "are"
            c = f"there {verb} {obj} in this {place}{text}"
        c = c[0].upper() + c[1:] + ("." if rng.random() < 0.7 else "")
        if c not in out:
            out.append(c)
        if len(out) == 5:
            break
    while len(out) < 5:  # short on distinct templates: vary the place word
        out.append(f"A {pick(_PLACE_SYN[s['place']])} with {obj_phrase(True)}.")
    return out


_WORD = re.compile(r"[a-z]+")
_PLACE_LOOKUP = {syn: p for p, syns in _PLACE_SYN.items() for syn in syns}
_OBJECT_LOOKUP = {**{o: o for o in OBJECTS}, **{_noun(o, 2): o for o in OBJECTS}}
_PEOPLE_WORDS = {"man": 1, "woman": 1, "person": 1, "men": 2, "people": 2}


def _parse_caption(text: str) -> dict[str, np.ndarray]:
    """Raw factor vectors for the factors a caption mentions (the text encoder's parser)."""
    low = text.lower()
    words = _WORD.findall(low)
    out: dict[str, np.ndarray] = {}
    for syn in sorted(_PLACE_LOOKUP, key=len, reverse=True):
        if re.search(rf"\b{syn}\b", low):
            v = np.zeros(BLOCKS["place"])
            v[PLACES.index(_PLACE_LOOKUP[syn])] = 1
            out["place"] = v
            break
    objs = np.zeros(BLOCKS["objects"])
    for i, w in enumerate(words):
        if w in _OBJECT_LOOKUP:
            count = _NUM_WORDS.get(words[i - 1], 1) if i else 1
            if i >= 2 and words[i - 1] in COLORS:
                count = _NUM_WORDS.get(words[i - 2], 1)
            objs[OBJECTS.index(_OBJECT_LOOKUP[w])] = 1 + 0.3 * (count - 1)
    if objs.any():
        out["objects"] = objs
    for w in words:
        if w in COLORS:
            v = np.zeros(BLOCKS["color"])
            v[COLORS.index(w)] = 1
            out["color"] = v
            break
    n_people = 0
    for i, w in enumerate(words):
        if w in _PEOPLE_WORDS:
            n_people = max(n_people, _PEOPLE_WORDS[w], _NUM_WORDS.get(words[i - 1], 0) if i else 0)
            if i and words[i - 1] == "of" and i >= 2 and words[i - 2] == "group":
                n_people = 3
    if n_people:
        out["people"] = np.array([n_people / 1.5, 1.0])
        for a, phrases in _ACTION_PHRASE.items():
            if any(p.split()[0] in words for p in phrases):
                v = np.zeros(BLOCKS["action"])
                v[ACTIONS.index(a)] = 1
                out["action"] = v
                break
        if "smiling" in words or "camera" in words:
            out["faces"] = np.array([n_people / 1.5, 1.0])
    for t in sorted(TEXTS, key=len, reverse=True):
        if t in low:
            v = np.zeros(BLOCKS["text"])
            v[0] = 1
            v[1 + TEXTS.index(t)] = 1
            out["text"] = v
            break
    return out
