"""The simulator's scenes: their vocabulary, how they are drawn, and their numeric factor code.

A scene is a dict of semantic factors (``place``, ``objects``, ``color``, ``people``, ``action``,
``faces``, ``text``) plus 16 ``lowlevel`` features; :data:`BLOCKS` gives the width of each factor's
block in the code and :data:`EMBEDDING_WEIGHTS` its weight in the image embedding.
"""

from __future__ import annotations

import numpy as np

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


def sample_scenes(rng: np.random.Generator, n: int) -> list[dict]:
    """``n`` scenes drawn from ``rng``: a place, objects mostly typical of it, people, text."""
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


def factor_vectors(s: dict) -> dict[str, np.ndarray]:
    """The raw (unstandardised) code of one scene, one vector per block of :data:`BLOCKS`."""
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


def encode_factors(scenes: list[dict]) -> dict[str, np.ndarray]:
    """Raw codes of many scenes: block name -> (n, width)."""
    vecs = [factor_vectors(s) for s in scenes]
    return {k: np.stack([v[k] for v in vecs]) for k in BLOCKS}
