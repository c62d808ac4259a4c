"""Helpers the notebooks share: list parameters from the command line, and key results recorded
in the notebook's outputs so that a re-run can be compared with them.

``papermill nb.ipynb out.ipynb -p lams "[0.1,0.5]"`` hands the notebook the *string*
``"[0.1,0.5]"``; :func:`as_list` turns a list parameter given either way into a list.

:func:`record` stores one named result of a notebook in its cell output, under the MIME type
:data:`RECORD_MIME` (as scrapbook's ``glue`` does), with a one-line text form for people.
:func:`read_records` reads them back from a notebook file, and :func:`compare_records` compares
two runs' records within per-kind tolerances: that is how the test suite checks the numbers that
come from trained models, whose last digits differ from one CPU to another.
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["as_list", "record", "read_records", "records_in_outputs", "compare_records", "Tolerance", "RECORD_MIME"]

RECORD_MIME = "application/vnd.otnsd.record+json"


def as_list(value, item_type=None, *, name: str = "parameter") -> list:
    """A list parameter as a list, whether it came as a list or as its string form.

    Accepts a list or tuple, the string form of one (``"[0.1, 0.5]"``, ``'["Face", "Body"]'``),
    comma-separated items (``"Face,Body"``) or a single item (``"Face"``, ``0.3``). Items are
    converted with ``item_type`` (e.g. ``float``) when given.

    >>> as_list("[0.1,0.5]", float)
    [0.1, 0.5]
    >>> as_list("Vision,Place")
    ['Vision', 'Place']
    >>> as_list(["Face"])
    ['Face']
    """
    items = value
    if isinstance(value, str):
        text = value.strip()
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            if text.startswith(("[", "(")):
                raise ValueError(f"{name}: cannot read {value!r} as a list; write it as e.g. \"[0.1, 0.5]\" or \"a,b\"") from None
            items = [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(items, (str, int, float)):
            items = [items]
    elif not isinstance(value, (list, tuple, np.ndarray)):
        items = [value]
    items = list(items)
    if item_type is None:
        return items
    try:
        return [item_type(v) for v in items]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: every item of {value!r} must be a {item_type.__name__} ({err})") from None


# ------------------------------------------------------------------------------------ records
def _plain(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    raise ValueError(f"a record holds a number, a bool or a str; got {type(value).__name__}")


def record(name: str, value, kind: str, *, fmt: str = ".4g") -> None:
    """Keep one key result of the notebook in its cell output.

    Parameters
    ----------
    name : str
        Unique within the notebook, e.g. ``"CIDEr/MSE-S1"``.
    value : number, bool or str
    kind : str
        What sort of quantity it is (``"caption"``, ``"top1"``, ...): the test suite's tolerance
        for a re-run is chosen by kind (``tests/test_notebook_records.py`` states them).
    fmt : str
        Format of the number in the text line shown in the notebook.
    """
    from IPython.display import display

    value = _plain(value)
    shown = format(value, fmt) if isinstance(value, float) else repr(value)
    display({RECORD_MIME: {"name": name, "value": value, "kind": kind}, "text/plain": f"recorded {name} = {shown}"},
            raw=True)


def metric_kind(metric: str, *, chaotic: bool = False) -> str:
    """The record kind (tolerance class) of an evaluation metric: ``top1``, ``clip_score`` or
    ``caption``, with ``_chaotic`` for a model whose training is chaotic (see
    :func:`otnsd.experiments.trains_chaotically`)."""
    kind = "top1" if metric.startswith("top") else "clip_score" if "CLIP" in metric else "caption"
    return kind + ("_chaotic" if chaotic else "")


def read_records(notebook) -> dict[str, tuple[object, str]]:
    """``name -> (value, kind)`` of every record stored in a notebook (a path or a dict)."""
    nb = json.loads(Path(notebook).read_text()) if not isinstance(notebook, dict) else notebook
    outputs = [o for cell in nb.get("cells", []) if cell.get("cell_type") == "code" for o in cell.get("outputs", [])]
    return records_in_outputs(outputs, where=str(notebook) if not isinstance(notebook, dict) else "the notebook")


def records_in_outputs(outputs, *, where: str = "these outputs") -> dict[str, tuple[object, str]]:
    """``name -> (value, kind)`` of the records among cell outputs (nbformat output dicts, as a
    notebook stores them or as a kernel sends them)."""
    out = {}
    for o in outputs:
        r = (o.get("data") or {}).get(RECORD_MIME)
        if r is not None:
            if r["name"] in out:
                raise ValueError(f"record {r['name']!r} is stored twice in {where}")
            out[r["name"]] = (r["value"], r["kind"])
    return out


@dataclass(frozen=True)
class Tolerance:
    """A re-run value ``v`` matches the stored ``s`` when ``|v - s| <= abs + rel * |s|``."""

    abs: float = 0.0
    rel: float = 0.0
    why: str = ""

    def allows(self, stored: float, fresh: float) -> bool:
        if math.isnan(stored) or math.isnan(fresh):
            return math.isnan(stored) and math.isnan(fresh)
        return abs(fresh - stored) <= self.abs + self.rel * abs(stored)


def compare_records(stored: dict, fresh: dict, tolerances: dict[str, Tolerance]) -> list[str]:
    """Differences between two runs' records: one line per record that is missing, new, of
    another kind, or outside its kind's tolerance (numbers), or not equal (bools and strings).
    An empty list means the runs agree."""
    problems = []
    for name in sorted(set(stored) | set(fresh)):
        if name not in fresh:
            problems.append(f"{name}: stored but not produced by the re-run")
            continue
        if name not in stored:
            problems.append(f"{name}: produced by the re-run but not stored (re-run `make figures`)")
            continue
        (s, kind), (v, fresh_kind) = stored[name], fresh[name]
        if kind != fresh_kind:
            problems.append(f"{name}: kind {fresh_kind!r}, stored as {kind!r}")
            continue
        if isinstance(s, bool) or isinstance(s, str) or isinstance(v, (bool, str)):
            if s != v:
                problems.append(f"{name}: {v!r}, stored {s!r} (compared exactly)")
            continue
        if kind not in tolerances:
            raise KeyError(f"no tolerance for records of kind {kind!r} (record {name!r})")
        tol = tolerances[kind]
        if not tol.allows(float(s), float(v)):
            problems.append(f"{name}: {v:.6g}, stored {s:.6g} (|diff| {abs(v - s):.3g} > {tol.abs:g} + {tol.rel:g}·|stored|, "
                            f"kind {kind!r})")
    return problems
