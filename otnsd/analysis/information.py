r"""Redundant, unique and synergistic information of two sources about a target (Gaussian estimates).

The interaction score of notebook 05, ``I_AB = p(A ∪ B) − max(p(A), p(B))``, measures
complementarity: unique information raises it as synergy does. A partial-information
decomposition (PID) splits what two sources carry into atoms. For sources :math:`A, B` and
target :math:`T`,

.. math::

    I(A, B; T) = R + U_A + U_B + S, \qquad I(A; T) = R + U_A, \qquad I(B; T) = R + U_B,

three equations for four atoms: a redundancy measure closes them. We use the minimum mutual
information (MMI) redundancy :math:`R = \min(I(A; T), I(B; T))`, which for jointly Gaussian
variables and a one-dimensional target is the decomposition every PID satisfying Williams and
Beer's axioms and Bertschinger et al.'s assumption (*) gives (Barrett 2015). Its limits, which
the tests pin: the weaker source never has unique information, so
:math:`S = I(A, B; T) - \max(I(A; T), I(B; T))`, the information-theoretic counterpart of
notebook 05's complementarity score (two noisy copies of one signal show synergy, as their noises
average); and with a multidimensional target (the simulator's factor codes) it can read two
sources that carry different parts of the target as redundant. What it adds to the
complementarity score is the redundancy atom and a named target, not a purer synergy.

Mutual informations are Gaussian (log-determinant) estimates in bits, bias-corrected for the
number of samples and dimensions; sources and targets of many columns are first reduced by PCA.
A Gaussian estimate is the information of the best linear-Gaussian description of the variables
(:math:`-\tfrac12\sum_i \log_2(1 - \rho_i^2)` over their canonical correlations): exact for
jointly Gaussian data (the simulator's voxels are linear mixtures of its factor codes plus Gaussian
noise), blind to nonlinear dependence, and for a categorical target (a one-hot code) not bounded by
the target's entropy: it grows without limit as a linear read-out becomes exact. PCA by variance
keeps the largest directions of a source, which need not hold its signal: the voxel-level values
are then lower bounds of what the voxels hold linearly.

References
----------
Williams, P. L. & Beer, R. D. (2010). Nonnegative decomposition of multivariate information. arXiv:1004.2515.
Barrett, A. B. (2015). Exploration of synergistic and redundant information sharing in static and
dynamical Gaussian systems. Phys. Rev. E 91, 052802.
Ince, R. A. A. et al. (2017). A statistical framework for neuroimaging data analysis based on mutual
information estimated via a Gaussian copula. Hum. Brain Mapp. 38, 1541-1573.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma

LN2 = np.log(2.0)


def _as_2d(name: str, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be (n,) or (n, d); got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf values: drop or impute those samples first")
    return x


def reduce_dims(x, k: int | None = None) -> np.ndarray:
    """The first ``k`` principal components of ``x`` (n, d) (all when ``k`` is None), without the
    degenerate ones (singular value below 1e-8 of the largest: e.g. a one-hot code's columns sum to
    a constant, which leaves its covariance singular)."""
    x = _as_2d("x", x)
    u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    keep = min(int((s > 1e-8 * s[0]).sum()) if s[0] > 0 else 0, x.shape[1] if k is None else k)
    if keep == 0:
        raise ValueError("x is constant: it carries no information")
    return u[:, :keep] * s[:keep]


def gaussian_entropy_logdet(x: np.ndarray, *, bias_correct: bool = True) -> float:
    """:math:`\\log\\det\\Sigma` of the rows of ``x`` (n, d), estimated from the sample covariance.

    With ``bias_correct``, the expected bias of the log-determinant of a sample covariance (n − 1
    in the denominator) of Gaussian data is removed:
    :math:`E[\\log\\det S] = \\log\\det\\Sigma + \\sum_{i=1}^{d}\\psi((n - i)/2) + d\\log(2/(n - 1))`.
    """
    n, d = x.shape
    if n <= d + 1:
        raise ValueError(f"{n} samples cannot estimate a {d}-dimensional covariance: reduce the dimensions "
                         f"(reduce_dims) or use more samples")
    eig = np.linalg.eigvalsh(np.cov(x, rowvar=False).reshape(d, d))
    if eig[0] <= 1e-12 * max(eig[-1], np.finfo(float).tiny):
        raise ValueError("the covariance is singular (a column is constant or a combination of others): reduce "
                         "the dimensions (reduce_dims) or drop the redundant columns")
    logdet = np.log(eig).sum()
    if bias_correct:
        logdet -= digamma((n - np.arange(1, d + 1)) / 2.0).sum() + d * np.log(2.0 / (n - 1))
    return float(logdet)


def gaussian_mi(x, y, *, bias_correct: bool = True) -> float:
    """Mutual information :math:`I(X; Y)` in bits under a Gaussian model.

    :math:`I = \\tfrac12\\left(\\log\\det\\Sigma_X + \\log\\det\\Sigma_Y - \\log\\det\\Sigma_{XY}\\right) / \\ln 2`.

    Parameters
    ----------
    x : array, shape (n,) or (n, dx)
    y : array, shape (n,) or (n, dy)
    bias_correct : remove the small-sample bias of each log-determinant (then a value may be
        slightly negative when X and Y are independent)
    """
    x, y = _as_2d("x", x), _as_2d("y", y)
    if len(x) != len(y):
        raise ValueError(f"x and y must hold the same samples: {len(x)} vs {len(y)} rows")
    h = lambda a: gaussian_entropy_logdet(a, bias_correct=bias_correct)  # noqa: E731
    return 0.5 * (h(x) + h(y) - h(np.hstack([x, y]))) / LN2


def pid(a, b, target, *, bias_correct: bool = True) -> dict:
    """Minimum-mutual-information PID of sources ``a`` and ``b`` about ``target`` (bits).

    Parameters
    ----------
    a, b : arrays, shape (n,) or (n, d_a), (n, d_b): the two sources (e.g. two regions' voxels,
        reduced by :func:`reduce_dims`)
    target : array, shape (n,) or (n, d_t)

    Returns
    -------
    dict with ``redundancy``, ``unique_a``, ``unique_b``, ``synergy`` (the four atoms, summing to
    ``joint``) and ``mi_a``, ``mi_b``, ``joint`` (:math:`I(A;T)`, :math:`I(B;T)`, :math:`I(A,B;T)`).
    """
    a, b, t = _as_2d("a", a), _as_2d("b", b), _as_2d("target", target)
    mi_a = gaussian_mi(a, t, bias_correct=bias_correct)
    mi_b = gaussian_mi(b, t, bias_correct=bias_correct)
    joint = gaussian_mi(np.hstack([a, b]), t, bias_correct=bias_correct)
    redundancy = min(mi_a, mi_b)
    return {"redundancy": redundancy, "unique_a": mi_a - redundancy, "unique_b": mi_b - redundancy,
            "synergy": joint - mi_a - mi_b + redundancy, "mi_a": mi_a, "mi_b": mi_b, "joint": joint}


def pid_matrix(sources: dict, target, regions, *, k: int = 8, bias_correct: bool = True) -> dict:
    """:func:`pid` for every pair of ``regions``, each source reduced to ``k`` principal components.

    Parameters
    ----------
    sources : dict region -> array (n, d): what each region holds (voxels, or a model's embeddings
        flattened), the same n samples in every array
    target : array (n,) or (n, d_t); its degenerate directions are dropped (:func:`reduce_dims`)
    regions : the regions to pair, in the order of the matrices' rows

    Returns
    -------
    dict of (R, R) arrays: ``synergy`` and ``redundancy`` (symmetric), ``unique`` (row region's
    unique information in the pair with the column region), and ``mi`` (R,), each region's
    :math:`I(A; T)`; the diagonals of the matrices are NaN.
    """
    regions = list(regions)
    missing = [r for r in regions if r not in sources]
    if missing:
        raise ValueError(f"no source for regions {missing}; sources holds {sorted(sources)}")
    reduced = {r: reduce_dims(sources[r], k) for r in regions}
    t = reduce_dims(target)  # the same information, without degenerate directions
    R = len(regions)
    out = {atom: np.full((R, R), np.nan) for atom in ("synergy", "redundancy", "unique")}
    out["mi"] = np.array([gaussian_mi(reduced[r], t, bias_correct=bias_correct) for r in regions])
    for i in range(R):
        for j in range(i + 1, R):
            p = pid(reduced[regions[i]], reduced[regions[j]], t, bias_correct=bias_correct)
            out["synergy"][i, j] = out["synergy"][j, i] = p["synergy"]
            out["redundancy"][i, j] = out["redundancy"][j, i] = p["redundancy"]
            out["unique"][i, j], out["unique"][j, i] = p["unique_a"], p["unique_b"]
    return out
