"""The simulator's caption grammar and its parser: COCO-style captions written from a scene, and
the factors a caption mentions read back from it (the text side of the CLIP stand-in).

The parser knows the grammar's words only; what a caption does not mention stays unknown.
"""

from __future__ import annotations

import re

import numpy as np

from .scenes import ACTIONS, BLOCKS, COLORS, OBJECTS, PLACES, TEXTS

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


def _noun(obj: str, count: int) -> str:
    return obj if count == 1 else _PLURAL.get(obj, obj + "s")


def scene_captions(s: dict, rng: np.random.Generator) -> list[str]:
    """Five distinct captions of scene ``s`` from varied templates and synonyms, each mentioning
    a random subset of its facts (drawn from ``rng``)."""
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


def parse_caption(text: str) -> dict[str, np.ndarray]:
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
