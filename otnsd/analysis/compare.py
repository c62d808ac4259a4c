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
    with seed ``s`` (paired by seed and by image). The estimate is the mean :math:`\bar d` of
    :math:`d_{si} = a_{si} - b_{si}`. The interval is :math:`\bar d \pm \sqrt{h_{seed}^2 + h_{image}^2}`:

    - :math:`h_{seed} = t_{n_s - 1} \, sd(\bar d_s) / \sqrt{n_s}`, Student's t over the per-seed
      mean differences :math:`\bar d_s` (0 with one seed);
    - :math:`h_{image}`: half the width of the percentile bootstrap over test images of the
      seed-averaged differences :math:`\bar d_i` (the test set is a sample too).

    Treating the two as independent errors counts the within-seed image noise twice, so the
    interval is a little conservative (about 3-4% false "holds"/"refuted" at level 0.95 under
    the null, measured by simulation). A percentile bootstrap that resamples seeds is not: with 3
    seeds it excludes 0 whenever the three seeds agree in sign, a quarter of the time under the
    null when seed variation dominates (``tests/test_seeds_and_controls.py``).
    ``n_boot=0`` gives no interval (``low`` and ``high`` are NaN, and :func:`verdict` says
    ``inconclusive``).

    Returns
    -------
    dict with ``mean``, ``low``, ``high``, ``n_seeds``, ``n_images`` and ``seed_sd`` (the standard
    deviation of the per-seed mean differences; 0 with one seed)
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] < 2:
        raise ValueError(f"a and b must be (n_seeds, n_images) with n_images >= 2; got {np.shape(a)} and {np.shape(b)}")
    n_seeds, n_images = d.shape
    mean, per_seed = float(d.mean()), d.mean(1)
    seed_sd = float(per_seed.std(ddof=1)) if n_seeds > 1 else 0.0
    out = {"mean": mean, "low": float("nan"), "high": float("nan"), "n_seeds": n_seeds, "n_images": n_images,
           "seed_sd": seed_sd}
    if n_boot < 1:
        return out
    images = np.random.default_rng(seed).integers(0, n_images, size=(n_boot, n_images))
    h = float(seed_image_half_width(per_seed, d.mean(0)[images].mean(1), level=level))
    return {**out, "low": mean - h, "high": mean + h}


def seed_image_half_width(per_seed, boot, *, level: float = 0.95):
    """Half-width of the interval of :func:`seed_paired_difference`: a Student-t half-width over
    ``per_seed`` values ``(n_seeds, ...)`` (0 with one seed) and half the width of the percentile
    interval of ``boot`` ``(n_boot, ...)`` (the statistic on test-image resamples of the
    seed-averaged scores), added as independent errors. Shapes after the first axis broadcast."""
    from scipy.stats import t as student_t

    per_seed, boot = np.asarray(per_seed, dtype=np.float64), np.asarray(boot, dtype=np.float64)
    alpha, n_seeds = (1 - level) / 2, len(per_seed)
    h_image = (np.quantile(boot, 1 - alpha, axis=0) - np.quantile(boot, alpha, axis=0)) / 2
    h_seed = student_t.ppf(1 - alpha, n_seeds - 1) * per_seed.std(0, ddof=1) / np.sqrt(n_seeds) if n_seeds > 1 else 0.0
    return np.hypot(h_image, h_seed)


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


def mean_ci(scores, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean of per-image scores ``(n_seeds, n_images)`` with the CI of :func:`seed_paired_difference`
    (over seeds and test images): ``mean``, ``low``, ``high``, ``n_seeds``, ``n_images``, ``seed_sd``."""
    a = np.asarray(scores, dtype=np.float64)
    return seed_paired_difference(a, np.zeros_like(a), n_boot=n_boot, level=level, seed=seed)


def lambda_curve(scores: dict, *, reference=None, rise_from: float | None = 0.1, plateau_from: float = 0.3,
                 n_boot: int = 2000, min_seeds: int = 3, seed: int = 0) -> dict:
    r"""One model family's score against the mass ratio λ, over training seeds, and whether it has
    the paper's shape: a rise from small λ, then a plateau ("robust to variations in λ" above 0.3).

    Parameters
    ----------
    scores : dict λ -> per-image scores ``(n_seeds, n_images)``; every λ has the same seeds (rows)
        and test images (columns)
    reference : ``(n_seeds, n_images)`` of a λ-free baseline trained with the same seeds (MSE), or None
    rise_from : the λ below the plateau (None: no rise is tested, e.g. a grid without a λ below
        ``plateau_from``)
    plateau_from : where the plateau starts

    Returns
    -------
    dict with

    - ``points``: λ -> :func:`mean_ci` of the score;
    - ``vs_reference``: λ -> :func:`seed_paired_difference` to the reference, with its ``verdict``
      (absent without a reference);
    - ``plateau``: the largest λ minus the first λ >= ``plateau_from`` (``end`` and ``start``: fixed
      in advance, not picked on the data, which would make any noise look like a drop), with its
      ``verdict`` (``refuted``: the curve falls over the plateau; ``holds``: it still rises);
    - ``rise``: the mean over λ >= ``plateau_from`` minus λ = ``rise_from``, with its ``verdict``
      (``holds``: the curve rises), or None without ``rise_from``;
    - ``shape``: ``"rise then plateau"`` (the rise holds, the plateau neither rises nor falls),
      ``"still rising"``, ``"rise then fall"``, ``"no rise"`` (the rise is refuted),
      ``"inconclusive"`` (the rise is inconclusive, e.g. fewer than ``min_seeds`` seeds) or
      ``"rise not tested"``.
    """
    lams = sorted(scores)
    arrays = {l: np.asarray(scores[l], dtype=np.float64) for l in lams}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every λ needs per-image scores of one shape (n_seeds, n_images); got {sorted(shapes)}")
    high = [l for l in lams if l >= plateau_from]
    if (rise_from is not None and rise_from not in arrays) or not high:
        raise ValueError(f"the grid {lams} needs λ = {rise_from} and at least one λ >= {plateau_from} "
                         "(rise_from=None tests the plateau only)")
    kw = dict(n_boot=n_boot, seed=seed)
    out = {"points": {l: mean_ci(a, **kw) for l, a in arrays.items()}}
    if reference is not None:
        out["vs_reference"] = {}
        for l, a in arrays.items():
            d = seed_paired_difference(a, reference, **kw)
            out["vs_reference"][l] = {**d, "verdict": verdict(d, min_seeds=min_seeds)}
    start, end = high[0], high[-1]
    plateau = seed_paired_difference(arrays[end], arrays[start], **kw)
    out["plateau"] = {**plateau, "start": start, "end": end, "verdict": verdict(plateau, min_seeds=min_seeds)}
    if rise_from is None:
        out["rise"], out["shape"] = None, "rise not tested"
        return out
    rise = seed_paired_difference(np.mean([arrays[l] for l in high], axis=0), arrays[rise_from], **kw)
    out["rise"] = {**rise, "verdict": verdict(rise, min_seeds=min_seeds)}
    if out["rise"]["verdict"] != "holds":
        out["shape"] = {"inconclusive": "inconclusive", "refuted": "no rise"}[out["rise"]["verdict"]]
    else:
        out["shape"] = {"inconclusive": "rise then plateau", "holds": "still rising",
                        "refuted": "rise then fall"}[out["plateau"]["verdict"]]
    return out
