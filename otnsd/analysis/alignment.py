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


def correlation_matrix(pred, target, *, centred: bool = False) -> np.ndarray:
    """Pearson correlation between every predicted and every target embedding (flattened).

    Entry ``(i, j)`` correlates brain embedding ``i`` with image embedding ``j`` (the paper's
    Fig. 1 heatmaps); the diagonal holds the matched pairs. Embeddings share a large mean
    component, which raises every entry, matched or not; ``centred=True`` first subtracts each
    set's mean embedding (over its rows), so an entry measures how two embeddings deviate from
    their set's mean alike.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    t = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
    if centred:
        p, t = p - p.mean(0), t - t.mean(0)
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


def true_pair_shares(model, dataset, subject: int, lam: float, *, batch_size: int = 64, seed: int = 0,
                     regions=None, val_images: int = 200) -> dict:
    r"""Where the exact partial-OT plan of a model's training batches puts the mass of the
    mislabelled rows: on their label, or on the image whose responses they hold.

    The training rows of ``subject`` (one repeat each; the last ``val_images``, held out in
    training as ``TrainConfig.val_images`` says, left out) are batched as
    training with ``keep_true_pairs`` batches them, each mislabelled row beside the row labelled
    with its true image; for each batch the plan :math:`\gamma` between the model's predictions
    and the labels is solved at mass ``lam``. For a mislabelled row :math:`i` with true partner
    :math:`j` the shares are :math:`\gamma_{ij} / \sum_k \gamma_{ik}` (true image) and
    :math:`\gamma_{ii} / \sum_k \gamma_{ik}` (wrong label), averaged over rows that carry mass;
    clean rows give their share on their own label.

    Returns
    -------
    dict with ``true`` and ``label`` (mislabelled rows), ``clean`` (clean rows on their label),
    ``chance`` (1 / batch size) and ``n_mislabelled`` (mislabelled rows in a batch with their partner)
    """
    from ..batches import SubjectSplit, paired_order, steps_per_epoch
    from ..train import predict

    split = SubjectSplit(dataset, subject, val_images=val_images, regions=regions, keep_true_pairs=True)
    rng = np.random.default_rng([seed, 0])
    order = paired_order(rng.permutation(len(split)), split.partner)
    d = dataset.subject(subject)
    wrong = d.meta["true_image_ids"][: len(split)] != d.train_image_ids[: len(split)]
    true, label, clean = [], [], []
    for b in range(steps_per_epoch([split], batch_size)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        voxels, targets = split.batch(idx, rng)
        pred = predict(model, voxels.numpy(), subject)
        gamma = plan_on_matches(pred, targets.numpy(), lam)[0]
        row_mass = gamma.sum(1)
        col = {int(i): k for k, i in enumerate(idx)}
        for k, i in enumerate(idx):
            if row_mass[k] <= 0:
                continue
            j = split.partner[i]
            if not wrong[i]:
                clean.append(gamma[k, k] / row_mass[k])
            elif int(j) in col:
                true.append(gamma[k, col[int(j)]] / row_mass[k])
                label.append(gamma[k, k] / row_mass[k])
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {"true": mean(true), "label": mean(label), "clean": mean(clean), "chance": 1 / batch_size,
            "n_mislabelled": len(true)}


def match_spread(pred, reference) -> np.ndarray:
    r"""Predictions stretched around their mean so that each coordinate's standard deviation over
    the samples equals that of ``reference`` (e.g. the training images' true embeddings).

    A regression model shrinks its predictions towards the mean as the signal-to-noise ratio falls
    (regression to the mean), and a captioner trained on true embeddings may read shrunken ones
    as generic. This post-hoc rescaling, :math:`\hat x_i = \bar x + (x_i - \bar x)\,
    \sigma_{ref} / \sigma_x` per coordinate, undoes the shrinkage without training: a control for
    whether a loss that matches distributions helps by aligning better or only by spreading its
    predictions (notebook 08). The statistics are taken over the predicted set itself.

    Parameters
    ----------
    pred : array (n, T, D) or (n, D)
    reference : array (m, T, D) or (m, D), the same trailing shape

    Returns
    -------
    array of ``pred``'s shape, float32
    """
    p = np.asarray(pred, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if p.shape[1:] != r.shape[1:] or len(p) < 2:
        raise ValueError(f"pred and reference must share their trailing shape and pred needs 2 samples or more; "
                         f"got {p.shape} and {r.shape}")
    mean, sd = p.mean(0), p.std(0)
    return (mean + (p - mean) * r.std(0) / np.maximum(sd, 1e-12)).astype(np.float32)
