"""Analyses the notebooks call: numerical checks of the theory and linear baselines.

Notebook 01 (MSE is a special case of OT) uses :func:`ot_mse_check`, :func:`entropic_error` and
:func:`ridge_predictions`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .ot import cost_matrix, mse_loss, partial_ot_loss, partial_plan


def _identity_ot(x: torch.Tensor, y: torch.Tensor, level: str) -> torch.Tensor:
    """OT loss evaluated at the identity plan gamma = I / N (per sample at token level)."""
    if level == "sample":
        C = cost_matrix(x.reshape(len(x), -1), y.reshape(len(y), -1))
        return torch.diagonal(C).mean()
    C = cost_matrix(x, y)
    return torch.diagonal(C, dim1=1, dim2=2).mean()


def ot_mse_check(x, y, lams, *, level: str = "sample", cost: str = "sqeuclidean", solver: str = "exact") -> dict:
    r"""The paper's claims, evaluated on one pair of embedding sets.

    Returns the MSE (eq. 2), the OT loss at the identity plan (eq. 17), and the optimal partial-OT
    loss for each :math:`\lambda` in ``lams`` (eq. 14), as floats, plus three verdicts:
    ``identity_equals_mse``, ``ot_below_mse`` (at :math:`\lambda = 1`) and ``monotone_in_lam``.

    Parameters
    ----------
    x, y : tensor or array, shape (N, D) or (N, T, D)
    lams : sequence of floats in (0, 1], increasing
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    lams = [float(v) for v in lams]
    mse = float(mse_loss(x, y, level=level))
    identity = float(_identity_ot(x, y, level)) if cost == "sqeuclidean" else float("nan")
    ot = np.array([float(partial_ot_loss(x, y, lam, level=level, cost=cost, solver=solver)) for lam in lams])
    full = ot[lams.index(1.0)] if 1.0 in lams else float(partial_ot_loss(x, y, 1.0, level=level, cost=cost, solver=solver))
    return {
        "lams": np.array(lams),
        "mse": mse,
        "ot_identity": identity,
        "ot": ot,
        "identity_equals_mse": bool(abs(identity - mse) <= 1e-9 * max(1.0, abs(mse))),
        "ot_below_mse": bool(full <= mse * (1 + 1e-12)),
        "monotone_in_lam": bool(np.all(np.diff(ot) >= -1e-12 * max(1.0, abs(ot).max()))),
    }


def entropic_error(C, lam: float, eps_rels) -> np.ndarray:
    """Relative error of the entropic loss against the exact one, for each relative epsilon.

    Returns ``(L_sinkhorn - L_exact) / L_exact`` for each ``eps_rel`` (``eps = eps_rel * std(C)``).
    The solver runs to a marginal tolerance of 1e-6 or 20000 sweeps, whichever comes first; at
    the smallest eps the sweep cap may bind, and what remains unconverged is part of the error.
    """
    C = torch.as_tensor(C, dtype=torch.float64)
    exact = float((partial_plan(C, lam, solver="exact") * C).sum())
    errors = []
    for r in eps_rels:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="entropic partial OT stopped")
            plan = partial_plan(C, lam, solver="sinkhorn", eps_rel=float(r), tol=1e-6, max_iter=20000)
        errors.append((float((plan * C).sum()) - exact) / exact)
    return np.array(errors)


def ridge_predictions(dataset, subject: int = 1, alpha: float = 1e4, *, regions=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Test-set embeddings predicted from voxels by ridge regression, and the true ones.

    A linear decoder :math:`W = (X^\top X + \alpha I)^{-1} X^\top Y` fitted on the training trials
    (every repeat a row, voxels z-scored on the training set), applied to the test voxels.

    Returns
    -------
    pred, target : arrays of shape (n_test, T, D)
    """
    d = dataset.subject(subject)
    mask = d.region_mask(regions) if regions is not None else np.ones(d.n_voxels, dtype=bool)
    X = d.train_voxels[:, :, mask].reshape(-1, int(mask.sum())).astype(np.float64)
    ids = np.repeat(d.train_image_ids, d.n_repeats)
    Y = dataset.image_embeddings(ids).reshape(len(ids), -1).astype(np.float64)
    mu, sd = X.mean(0), X.std(0) + 1e-8
    X = (X - mu) / sd
    y_mean = Y.mean(0)
    W = np.linalg.solve(X.T @ X + alpha * np.eye(X.shape[1]), X.T @ (Y - y_mean))
    pred = ((d.test_voxels[:, mask] - mu) / sd) @ W + y_mean
    T, D = dataset.embedding_shape
    return pred.reshape(-1, T, D).astype(np.float32), dataset.image_embeddings(d.test_image_ids)


def correlation_matrix(pred, target) -> np.ndarray:
    """Pearson correlation between every predicted and every target embedding (flattened).

    Entry ``(i, j)`` correlates brain embedding ``i`` with image embedding ``j`` (the paper's
    Fig. 1 heatmaps); the diagonal holds the matched pairs.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    t = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
    p = (p - p.mean(1, keepdims=True)) / (p.std(1, keepdims=True) + 1e-12)
    t = (t - t.mean(1, keepdims=True)) / (t.std(1, keepdims=True) + 1e-12)
    return p @ t.T / p.shape[1]


def diagonal_contrast(R: np.ndarray) -> tuple[float, float]:
    """Mean matched (diagonal) and mean unmatched (off-diagonal) correlation of a square matrix."""
    off = ~np.eye(len(R), dtype=bool)
    return float(np.diag(R).mean()), float(R[off].mean())


def valid_voxels(dataset, subject: int, regions=None) -> tuple[int, int]:
    """(voxels kept, voxels in all) for a region subset: Table 2's "Valid Voxels" column."""
    d = dataset.subject(subject)
    kept = d.n_voxels if regions is None else int(d.region_mask(regions).sum())
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
