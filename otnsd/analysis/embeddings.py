"""What embeddings contain and how they are arranged (notebooks 05, 07): linear probes, joint
PCA / UMAP projections and how well groups separate in them."""

from __future__ import annotations

import warnings

import numpy as np


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
    """Silhouette score of ``labels`` among ``points`` (n, ...): near 1 well-separated groups, near 0
    entangled ones. Points with more than two dimensions are flattened per sample: pass the
    embeddings themselves (Euclidean distances of the embedding space) rather than a 2-D
    projection, whose distances UMAP does not keep."""
    from sklearn.metrics import silhouette_score

    X = np.asarray(points, dtype=np.float64)
    return float(silhouette_score(X.reshape(len(X), -1), np.asarray(labels)))


def embedding_separations(embeddings: dict, comparisons: dict) -> dict:
    """Silhouettes of several groupings of embedding sets, in the embedding space: ``comparisons``
    maps a label to the names (keys of ``embeddings``, each (n, ...)) whose sets are compared, each
    set labelled by its name. Returns label -> :func:`separation`."""
    missing = sorted({n for names in comparisons.values() for n in names} - set(embeddings))
    if missing:
        raise ValueError(f"no embeddings named {missing}; have {sorted(embeddings)}")
    out = {}
    for label, names in comparisons.items():
        points = np.concatenate([np.asarray(embeddings[n]) for n in names])  # separation flattens each sample
        out[label] = separation(points, np.repeat(list(names), [len(embeddings[n]) for n in names]))
    return out


def embedding_spread(embeddings, reference) -> float:
    r"""How far a set of embeddings is from collapsing to its mean: the total variance of
    ``embeddings`` (n, ...) over that of ``reference`` (m, ...), e.g. the true image embeddings of
    the same images. 1: as spread as the targets; near 0: every input gets about the same output
    (a weak model regressing to the mean), which by itself separates its embeddings from others'.
    """
    X = np.asarray(embeddings, dtype=np.float64)
    R = np.asarray(reference, dtype=np.float64)
    X, R = X.reshape(len(X), -1), R.reshape(len(R), -1)
    if X.shape[1] != R.shape[1]:
        raise ValueError(f"embeddings and reference differ in dimension: {X.shape[1]} vs {R.shape[1]}")
    return float(X.var(0).sum() / R.var(0).sum())


def probe_interaction(embeddings: dict, target, regions, *, alpha: float = 10.0, seed: int = 0) -> tuple[np.ndarray, dict]:
    r"""Redundancy and synergy of one factor: :func:`probe_r2` of each single region's and each
    pair's embeddings, turned into an :func:`~otnsd.analysis.regions.interaction_matrix`
    (:math:`R^2(A \cup B) - \max(R^2(A), R^2(B))`).

    Parameters
    ----------
    embeddings : dict frozenset of region names -> embeddings (n, ...) of a model trained on them;
        needs every single region of ``regions`` and every pair
    target : array (n, k), the factor's code for the same n images

    Returns
    -------
    I : array (len(regions), len(regions)); r2 : dict frozenset -> R²
    """
    from .regions import interaction_matrix, region_subsets

    wanted = [frozenset(s) for s in region_subsets(regions, sizes=(1, 2))]
    missing = [sorted(k) for k in wanted if k not in embeddings]
    if missing:
        raise ValueError(f"embeddings lack the region sets {missing}")
    r2 = {k: probe_r2(embeddings[k], target, alpha=alpha, seed=seed) for k in wanted}
    return interaction_matrix(r2, regions), r2
