"""Comparisons of evaluated models (notebooks 03, 04, 08): a mean relative gain over metrics, whether a
metric is robust to the mass ratio λ, the two readings of a gain quoted from the paper, and the
rule for verdicts over training seeds (:func:`seed_paired_difference`, :func:`verdict`,
:func:`compare_seeds`).

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


VERDICTS = ("holds", "refuted", "inconclusive")


def seed_paired_difference(a, b, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    r"""Difference of model ``a`` over model ``b``, with a CI that includes training-seed and
    test-image variation.

    ``a[s, i]`` and ``b[s, i]`` are per-image scores on test image ``i`` of the two models trained
    with seed ``s`` (paired by seed and by image). The estimate is the mean of
    :math:`d_{si} = a_{si} - b_{si}`; the interval is a two-level percentile bootstrap: seeds
    resampled with replacement, then images (the same resample for every seed), the mean of each
    resample. With one seed the interval covers image variation only.

    Returns
    -------
    dict with ``mean``, ``low``, ``high``, ``n_seeds``, ``n_images`` and ``seed_sd`` (the standard
    deviation of the per-seed mean differences; 0 with one seed)
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] < 2:
        raise ValueError(f"a and b must be (n_seeds, n_images) with n_images >= 2; got {np.shape(a)} and {np.shape(b)}")
    n_seeds, n_images = d.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    images = rng.integers(0, n_images, size=(n_boot, n_images))
    per_seed_image_means = np.stack([d[:, idx].mean(1) for idx in images])  # (n_boot, n_seeds)
    boot = np.take_along_axis(per_seed_image_means, seeds, axis=1).mean(1)
    alpha = (1 - level) / 2
    return {"mean": float(d.mean()), "low": float(np.quantile(boot, alpha)), "high": float(np.quantile(boot, 1 - alpha)),
            "n_seeds": n_seeds, "n_images": n_images, "seed_sd": float(d.mean(1).std(ddof=1)) if n_seeds > 1 else 0.0}


def verdict(difference: dict, *, min_seeds: int = 3) -> str:
    """The project's rule for a claim "a beats b": ``holds`` when the CI of
    :func:`seed_paired_difference` lies above 0, ``refuted`` when it lies below 0, else
    ``inconclusive``; with fewer than ``min_seeds`` training seeds always ``inconclusive``."""
    if difference["n_seeds"] < min_seeds:
        return "inconclusive"
    if difference["low"] > 0:
        return "holds"
    if difference["high"] < 0:
        return "refuted"
    return "inconclusive"


def compare_seeds(scores: dict, baseline: str, *, n_boot: int = 2000, min_seeds: int = 3, seed: int = 0) -> dict:
    """Every model family against ``baseline`` over training seeds (notebook 08's verdicts).

    Parameters
    ----------
    scores : dict (family, training seed) -> per-image scores on the same test images
    baseline : the family the others are compared with (e.g. ``"MSE"``), trained with the same seeds

    Returns
    -------
    dict family -> ``mean`` and ``sd`` (over seeds of the per-seed mean score), ``seeds``, and
    for families other than the baseline ``difference`` (:func:`seed_paired_difference` over the
    seeds both have) and ``verdict`` (:func:`verdict` on it)
    """
    families = list(dict.fromkeys(f for f, _ in scores))
    if baseline not in families:
        raise ValueError(f"the baseline {baseline!r} is not among the families {families}")
    out = {}
    for f in families:
        seeds = sorted(s for g, s in scores if g == f)
        means = np.array([np.mean(scores[(f, s)]) for s in seeds])
        row = {"mean": float(means.mean()), "sd": float(means.std(ddof=1)) if len(means) > 1 else 0.0, "seeds": seeds}
        if f != baseline:
            shared = [s for s in seeds if (baseline, s) in scores]
            if not shared:
                raise ValueError(f"{f!r} shares no training seed with {baseline!r}")
            row["difference"] = seed_paired_difference([scores[(f, s)] for s in shared],
                                                       [scores[(baseline, s)] for s in shared], n_boot=n_boot, seed=seed)
            row["verdict"] = verdict(row["difference"], min_seeds=min_seeds)
        out[f] = row
    return out
