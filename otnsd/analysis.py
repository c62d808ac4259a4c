"""Analyses the notebooks call; the notebooks only call these and plot.

- Theory (notebook 01): :func:`ot_mse_check`, :func:`entropic_error`; linear baseline
  :func:`ridge_predictions`; Fig. 1's :func:`correlation_matrix`.
- Regions (notebooks 04-06): :func:`valid_voxels` (Table 2), :func:`interaction_matrix`
  (redundancy and synergy), :func:`gradient_saliency` and :func:`perturbation_importance`
  (Fig. 4's two importance measures), :func:`rank_agreement` (against a planted truth).
- Embeddings (notebook 07): :func:`project_embeddings` (PCA / UMAP), :func:`separation`.
"""

from __future__ import annotations

import itertools
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


def region_subsets(regions, sizes=(1, 2)) -> list[tuple[str, ...]]:
    """Every subset of ``regions`` with a size in ``sizes`` (singles and pairs by default)."""
    return [s for k in sizes for s in itertools.combinations(list(regions), k)]


def probe_r2(features, target, *, alpha: float = 10.0, folds: int = 5, seed: int = 0) -> float:
    r"""Cross-validated :math:`R^2` of a ridge probe from ``features`` (n, ...) to ``target`` (n, k).

    How much of a factor is linearly readable from a set of embeddings: features are flattened
    and standardised within each training fold; the :math:`R^2` pools the held-out predictions of
    ``folds`` folds over all target columns.
    """
    X = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    Y = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
    if len(X) != len(Y) or len(X) < 2 * folds:
        raise ValueError(f"need one target row per feature row and at least {2 * folds} rows; got {len(X)} and {len(Y)}")
    order = np.random.default_rng(seed).permutation(len(X))
    pred = np.empty_like(Y)
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        mu, sd, y_mu = X[train].mean(0), X[train].std(0) + 1e-12, Y[train].mean(0)
        Xt = (X[train] - mu) / sd
        # dual form: n_train x n_train system, cheap when features outnumber samples
        K = Xt @ Xt.T
        A = np.linalg.solve(K + alpha * np.eye(len(train)), Y[train] - y_mu)
        pred[part] = ((X[part] - mu) / sd) @ (Xt.T @ A) + y_mu
    return float(1 - ((Y - pred) ** 2).sum() / ((Y - Y.mean(0)) ** 2).sum())


# ------------------------------------------------------------------------------ importance
def gradient_saliency(model, voxels, targets, subject: int, loss_fn, groups: dict, *, batch_size: int = 64) -> dict:
    r"""Gradient perturbation importance: how strongly the loss reacts to each region's voxels.

    For each voxel :math:`v` the saliency is :math:`s_v = \frac1n\sum_i |\partial L_i / \partial z_{iv}|`,
    the mean absolute gradient of the per-sample loss with respect to the *standardised* voxel
    :math:`z_{iv} = (x_{iv} - \mu_v) / \sigma_v` (so voxel scales do not matter). Per region
    :math:`R`: ``raw`` :math:`= \sum_{v \in R} s_v` (large regions count more) and
    ``per_voxel`` :math:`= \frac{1}{|R|} \sum_{v \in R} s_v`.

    Parameters
    ----------
    model : BrainEncoder
    voxels : array (n, V) of the model's input voxels; targets : array (n, T, D)
    loss_fn : callable(pred, target) -> scalar mean over the batch (a loss of ``otnsd.ot``)
    groups : dict name -> boolean mask over the V voxels

    Returns
    -------
    dict with ``raw`` and ``per_voxel``, each name -> float, and ``voxel`` (array (V,) of s_v)
    """
    x_all = torch.as_tensor(np.asarray(voxels), dtype=torch.float32)
    y_all = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    if x_all.ndim != 2 or len(x_all) != len(y_all):
        raise ValueError(f"voxels must be (n, V) with one target per row; got {tuple(x_all.shape)} and {tuple(y_all.shape)}")
    masks = _check_groups(groups, x_all.shape[1])
    std = model.tokenizers[str(int(subject))].voxel_std.detach()
    was_training = model.training
    model.eval()
    total = torch.zeros(x_all.shape[1], dtype=torch.float64)
    for i in range(0, len(x_all), batch_size):
        x = x_all[i : i + batch_size].clone().requires_grad_(True)
        loss = loss_fn(model(x, subject), y_all[i : i + batch_size])
        (grad,) = torch.autograd.grad(loss, x)
        # the batch loss is a mean: scale back to per-sample gradients, and to standardised voxels
        total += (grad.abs() * std * len(x)).sum(0).double()
    model.train(was_training)
    s = (total / len(x_all)).numpy()
    return {"raw": {n: float(s[m].sum()) for n, m in masks.items()},
            "per_voxel": {n: float(s[m].mean()) for n, m in masks.items()},
            "voxel": s}


def perturbation_importance(score, voxels, groups: dict, *, mode: str = "permute", n_repeats: int = 3, seed: int = 0) -> dict:
    """Voxel-based weighting: the drop in a score when one region's voxels are perturbed.

    ``mode="permute"`` shuffles the region's voxel patterns across images (each voxel keeps its
    distribution, the link to the image is broken); ``mode="mean"`` replaces them by their mean
    over images (the region carries no image information). The drop is averaged over
    ``n_repeats`` permutations (``mean`` needs one).

    Parameters
    ----------
    score : callable(voxels (n, V)) -> float, higher is better (e.g. CIDEr of the captions)
    voxels : array (n, V)
    groups : dict name -> boolean mask over the V voxels

    Returns
    -------
    dict with ``base`` (the unperturbed score) and ``drop`` (name -> base - perturbed score)
    """
    if mode not in ("permute", "mean"):
        raise ValueError(f"mode must be 'permute' or 'mean'; got {mode!r}")
    voxels = np.asarray(voxels)
    masks = _check_groups(groups, voxels.shape[1])
    base = float(score(voxels))
    rng = np.random.default_rng(seed)
    drop = {}
    for name, mask in masks.items():
        scores = []
        for _ in range(n_repeats if mode == "permute" else 1):
            x = voxels.copy()
            x[:, mask] = voxels[rng.permutation(len(voxels))][:, mask] if mode == "permute" else voxels[:, mask].mean(0)
            scores.append(float(score(x)))
        drop[name] = base - float(np.mean(scores))
    return {"base": base, "drop": drop}


def _check_groups(groups: dict, n_voxels: int) -> dict:
    """Region masks as boolean arrays, each non-empty and over all ``n_voxels`` (checked before any work)."""
    masks = {name: np.asarray(m, dtype=bool) for name, m in groups.items()}
    for name, m in masks.items():
        if m.shape != (n_voxels,) or not m.any():
            raise ValueError(f"group {name!r} must be a non-empty boolean mask over the {n_voxels} voxels")
    return masks


def rank_agreement(measured: dict, truth: dict) -> float:
    """Spearman correlation between a measured and a true importance over their common keys."""
    from scipy.stats import spearmanr

    keys = [k for k in truth if k in measured]
    if len(keys) < 3:
        raise ValueError(f"need at least 3 common regions to rank; got {keys}")
    return float(spearmanr([measured[k] for k in keys], [truth[k] for k in keys]).statistic)


# ------------------------------------------------------------------------------ embeddings
def project_embeddings(embeddings: dict, method: str = "pca", *, seed: int = 0, n_pca: int = 50) -> dict:
    """2-D projections of several sets of embeddings, fitted jointly so they share one map.

    Each set is (n, T, D) or (n, D), flattened per sample and standardised over all sets; PCA
    projects directly, UMAP runs on the first ``n_pca`` principal components (seeded).

    Returns
    -------
    dict name -> array (n, 2)
    """
    names = list(embeddings)
    flat = [np.asarray(embeddings[k], dtype=np.float64).reshape(len(embeddings[k]), -1) for k in names]
    if len({f.shape[1] for f in flat}) != 1:
        raise ValueError("all embedding sets must have the same dimension")
    X = np.vstack(flat)
    X = (X - X.mean(0)) / (X.std(0) + 1e-12)
    U, S, _ = np.linalg.svd(X, full_matrices=False)
    pcs = U * S
    if method == "pca":
        Z = pcs[:, :2]
    elif method == "umap":
        with warnings.catch_warnings():
            # umap imports tqdm.auto (a widget warning in notebooks) and warns that a seed means one job
            warnings.filterwarnings("ignore", message="IProgress not found")
            warnings.filterwarnings("ignore", message=".*n_jobs value 1 overridden.*")
            import umap

            Z = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15, min_dist=0.1).fit_transform(pcs[:, :n_pca])
    else:
        raise ValueError(f"method must be 'pca' or 'umap'; got {method!r}")
    out, start = {}, 0
    for k, f in zip(names, flat):
        out[k] = np.asarray(Z[start : start + len(f)])
        start += len(f)
    return out


def separation(points, labels) -> float:
    """Silhouette score of ``labels`` in the projected ``points``: near 1 well-separated groups,
    near 0 entangled ones."""
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(np.asarray(points), np.asarray(labels)))
