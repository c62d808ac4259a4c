"""Comparisons of evaluated models (notebooks 03-04): a mean relative gain over metrics, whether a
metric is robust to the mass ratio λ, and the two readings of a gain quoted from the paper.

Results are the dicts of :func:`otnsd.metrics.evaluate_embeddings`: metric -> (value, CI low,
CI high).
"""

from __future__ import annotations

import numpy as np


def mean_gain(results: dict, a: str, b: str, metrics) -> float:
    """Mean relative gain (in %) of model ``a`` over model ``b``: ``100 * mean_m (a_m - b_m) / b_m``
    over ``metrics`` (each must be computed for both)."""
    metrics = list(metrics)
    missing = [m for m in metrics if results[a][m][0] is None or results[b][m][0] is None]
    if missing or not metrics:
        raise ValueError(f"metrics {missing or '(none)'} are not computed for both {a!r} and {b!r}")
    return float(100 * np.mean([(results[a][m][0] - results[b][m][0]) / results[b][m][0] for m in metrics]))


def lambda_robustness(by_lam: dict, metric: str = "CIDEr", *, above: float = 0.3) -> dict:
    """Is ``metric`` robust to λ over the grid points ``>= above``?

    Robust means the worst value on those points lies inside the 95% CI of the best one (the
    paper: "robust to variations in λ" above 0.3).

    Parameters
    ----------
    by_lam : dict λ -> results of one model family (one region set, one loss)

    Returns
    -------
    dict with ``best`` and ``worst`` (λ), their ``(value, low, high)`` as ``best_value`` and
    ``worst_value``, ``robust`` (bool) and ``below``: λ -> value for the grid points under ``above``
    """
    high = sorted(l for l in by_lam if l >= above)
    if not high:
        raise ValueError(f"no λ >= {above} in the grid {sorted(by_lam)}")
    best = max(high, key=lambda l: by_lam[l][metric][0])
    worst = min(high, key=lambda l: by_lam[l][metric][0])
    return {"best": best, "worst": worst, "best_value": by_lam[best][metric], "worst_value": by_lam[worst][metric],
            "robust": bool(by_lam[worst][metric][0] >= by_lam[best][metric][1]),
            "below": {l: by_lam[l][metric][0] for l in sorted(by_lam) if l < above}}


def quoted_gain(quoted: dict, a: str, b: str) -> dict:
    """Two readings of "model ``a`` improves on ``b`` by X% on average" over the rows of a quoted
    table (name -> one value per metric, None where missing): ``points``, the mean difference in
    metric points, and ``relative``, the mean relative gain in %. Metrics missing in either row are
    left out; ``n`` says how many were used."""
    pairs = [(x, y) for x, y in zip(quoted[a], quoted[b]) if x is not None and y is not None]
    if not pairs:
        raise ValueError(f"rows {a!r} and {b!r} share no metric")
    x, y = np.array(pairs, dtype=float).T
    return {"points": float((x - y).mean()), "relative": float(100 * ((x - y) / y).mean()), "n": len(pairs)}
