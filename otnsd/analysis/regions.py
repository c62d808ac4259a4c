"""Brain regions (notebooks 04-06): Table 2's valid voxels, redundancy and synergy between
regions (with CIs over seeds and images), and agreement of a measured ranking with a planted one
(with an exact permutation p-value)."""

from __future__ import annotations

import itertools

import numpy as np


def valid_voxels(dataset, subject: int, regions=None) -> tuple[int, int]:
    """(voxels kept, voxels in all) for a region subset: Table 2's "Valid Voxels" column."""
    d = dataset.subject(subject)
    kept = int(d.voxel_mask(regions).sum())
    return kept, d.n_voxels


def interaction_matrix(perf: dict, regions) -> np.ndarray:
    r"""Pairwise region interaction: :math:`I_{AB} = p(A \cup B) - \max(p(A), p(B))`.

    Large positive values mean synergy (the pair does better than either region alone); values
    near 0 mean redundancy (the pair adds nothing over its better member).

    Parameters
    ----------
    perf : dict
        Performance of region sets, keyed by ``frozenset`` of region names; needs every single
        region of ``regions`` and every pair.
    regions : sequence of str

    Returns
    -------
    I : array (len(regions), len(regions)), symmetric, NaN on the diagonal
    """
    regions = list(regions)
    n = len(regions)
    out = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(i + 1, n):
            a, b = regions[i], regions[j]
            missing = [k for k in (frozenset([a]), frozenset([b]), frozenset([a, b])) if k not in perf]
            if missing:
                raise ValueError(f"perf lacks the region sets {[sorted(k) for k in missing]}")
            v = perf[frozenset([a, b])] - max(perf[frozenset([a])], perf[frozenset([b])])
            out[i, j] = out[j, i] = v
    return out


def interaction_ci(scores: dict, regions, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    r""":func:`interaction_matrix` over training seeds, with a 95% CI per pair.

    The score of a region set is the mean of its per-image scores; :math:`I_{AB}` is computed per
    seed and averaged. The interval combines, as in
    :func:`~otnsd.analysis.compare.seed_paired_difference`, a Student-t interval over the per-seed
    values (training variation; 0 with one seed) and a percentile bootstrap over test images of
    :math:`I_{AB}` from the seed-averaged per-image scores (test-set variation).

    Parameters
    ----------
    scores : dict frozenset of region names -> per-image scores ``(n_seeds, n_images)`` (same seeds
        and images for every set); needs every single region of ``regions`` and every pair

    Returns
    -------
    dict with ``I`` (the mean over seeds), ``low``, ``high`` (arrays like :func:`interaction_matrix`'s)
    and ``per_seed`` (``(n_seeds, n, n)``)
    """
    from .compare import seed_image_half_width

    regions = list(regions)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every region set needs per-image scores of one shape (n_seeds, n_images); got {sorted(shapes)}")
    n_seeds, n_images = next(iter(shapes))
    per_seed = np.stack([interaction_matrix({k: a[s].mean() for k, a in arrays.items()}, regions) for s in range(n_seeds)])
    I = per_seed.mean(0)
    if n_boot < 1:
        return {"I": I, "low": np.full_like(I, np.nan), "high": np.full_like(I, np.nan), "per_seed": per_seed}
    idx = np.random.default_rng(seed).integers(0, n_images, size=(n_boot, n_images))
    means = {k: a.mean(0)[idx].mean(1) for k, a in arrays.items()}  # (n_boot,) per set, seed-averaged
    boot = np.stack([interaction_matrix({k: m[b] for k, m in means.items()}, regions) for b in range(n_boot)])
    h = seed_image_half_width(per_seed, boot, level=level)
    return {"I": I, "low": I - h, "high": I + h, "per_seed": per_seed}


def region_subsets(regions, sizes=(1, 2)) -> list[tuple[str, ...]]:
    """Every subset of ``regions`` with a size in ``sizes`` (singles and pairs by default)."""
    return [s for k in sizes for s in itertools.combinations(list(regions), k)]


def rank_agreement(measured: dict, truth: dict) -> float:
    """Spearman correlation between a measured and a true importance over their common keys."""
    from scipy.stats import spearmanr

    keys = [k for k in truth if k in measured]
    if len(keys) < 3:
        raise ValueError(f"need at least 3 common regions to rank; got {keys}")
    return float(spearmanr([measured[k] for k in keys], [truth[k] for k in keys]).statistic)


def rank_test(measured: dict, truth: dict) -> dict:
    r"""Spearman agreement of a measured ranking with a planted one, with its exact permutation p-value.

    Under the null hypothesis that the measure is unrelated to the truth, every assignment of the
    measured values to the regions is equally likely; with n regions all :math:`n!` of them are
    enumerated (n <= 9). The test is one-sided, in the direction predicted before any run: the
    measure agrees with the truth, :math:`p = P(\rho_\pi \ge \rho)`. Ties count as at least as
    extreme. With 6 regions the smallest possible p is 1/720.

    Returns
    -------
    dict with ``rho``, ``p`` and ``n`` (regions compared)
    """
    from scipy.stats import rankdata

    keys = [k for k in truth if k in measured]
    if len(keys) < 3:
        raise ValueError(f"need at least 3 common regions to rank; got {keys}")
    if len(keys) > 9:
        raise ValueError(f"an exact test enumerates n! orders; {len(keys)} regions is too many (at most 9)")
    x, y = rankdata([measured[k] for k in keys]), rankdata([truth[k] for k in keys])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("a ranking with every value tied has no Spearman correlation")

    def rho(a):
        a, b = a - a.mean(), y - y.mean()
        return float(a @ b / np.sqrt((a @ a) * (b @ b)))

    observed = rho(x)
    perms = np.array([rho(x[list(p)]) for p in itertools.permutations(range(len(keys)))])
    return {"rho": observed, "p": float(np.mean(perms >= observed - 1e-12)), "n": len(keys)}


def rank_pairs(I: np.ndarray, regions) -> list[tuple[float, str, str]]:
    """Every region pair ``(I_ab, a, b)`` of an :func:`interaction_matrix`, from the most synergistic
    (largest) to the most redundant (smallest)."""
    regions = list(regions)
    n = len(regions)
    if np.shape(I) != (n, n):
        raise ValueError(f"I must be {n} x {n} for {n} regions; got shape {np.shape(I)}")
    pairs = [(float(I[i, j]), regions[i], regions[j]) for i in range(n) for j in range(i + 1, n)]
    return sorted(pairs, key=lambda p: p[0], reverse=True)


def planted_pair_ranks(I: np.ndarray, regions, planted: dict) -> list[dict]:
    """Where planted region pairs land in the ranking of :func:`rank_pairs`.

    Parameters
    ----------
    I : interaction matrix over ``regions``
    planted : dict label -> (region a, region b), e.g. a simulator's planted synergies; pairs with
        a region outside ``regions`` are skipped

    Returns
    -------
    list of dicts with ``label``, ``pair``, ``I`` and ``rank`` (1 = most synergistic) ``of`` all pairs
    """
    ranked = rank_pairs(I, regions)
    order = [frozenset(p[1:]) for p in ranked]
    out = []
    for label, (a, b) in planted.items():
        if a in regions and b in regions:
            k = order.index(frozenset([a, b]))
            out.append({"label": label, "pair": (a, b), "I": ranked[k][0], "rank": k + 1, "of": len(ranked)})
    return out
