"""Brain regions (notebooks 04-06): Table 2's valid voxels, redundancy and synergy between
regions, and agreement of a measured ranking with a planted one."""

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
