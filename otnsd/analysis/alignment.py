"""How well predicted embeddings line up with the true ones: a linear (ridge) decoder as the
baseline, Fig. 1's correlation heatmaps, and the share of an OT plan on the matched pairs."""

from __future__ import annotations

import numpy as np
import torch

from ..ot import cost_matrix, partial_plan


def ridge_predictions(dataset, subject: int = 1, alpha: float = 1e4, *, regions=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Test-set embeddings predicted from voxels by ridge regression, and the true ones.

    A linear decoder :math:`W = (X^\top X + \alpha I)^{-1} X^\top Y` fitted on the training trials
    (every repeat a row, voxels z-scored on the training set), applied to the test voxels.

    Returns
    -------
    pred, target : arrays of shape (n_test, T, D)
    """
    d = dataset.subject(subject)
    mask = d.voxel_mask(regions)
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


def plan_on_matches(pred, target, lam: float) -> tuple[np.ndarray, float]:
    r"""The exact partial-OT plan between predicted and true embeddings, and its share on the
    matched pairs :math:`\sum_i \gamma_{ii} / \sum_{ij} \gamma_{ij}` (1: every brain embedding is
    transported to its own image; 1/N for a plan blind to the pairing).

    Parameters
    ----------
    pred, target : arrays (n, T, D) or (n, D), flattened per sample
    lam : float in (0, 1], the mass ratio

    Returns
    -------
    gamma : array (n, n); share : float
    """
    x = torch.as_tensor(np.asarray(pred), dtype=torch.float64).reshape(len(pred), -1)
    y = torch.as_tensor(np.asarray(target), dtype=torch.float64).reshape(len(target), -1)
    gamma = partial_plan(cost_matrix(x, y), lam, solver="exact")
    return gamma.numpy(), float(torch.diagonal(gamma).sum() / gamma.sum())
