"""Region importance (notebook 06, the paper's Fig. 4): gradient saliency, the drop of a score
when a region's voxels are perturbed, and CIs over seeds and images for either that drop or the
loss of a model retrained without the region (:func:`importance_ci`)."""

from __future__ import annotations

import numpy as np
import torch


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
    """Voxel-based weighting (our reading of the paper's Fig. 4): the drop in a score when one
    region's voxels are perturbed.

    ``mode="permute"`` shuffles the region's voxel patterns across images (each voxel keeps its
    distribution, the link to the image is broken); ``mode="mean"`` replaces them by their mean
    over images (the region carries no image information). The drop is averaged over
    ``n_repeats`` permutations (``mean`` needs one).

    Parameters
    ----------
    score : callable(voxels (n, V)) -> float, or per-image scores (n,) whose mean is the score;
        higher is better (e.g. CIDEr of the captions)
    voxels : array (n, V)
    groups : dict name -> boolean mask over the V voxels

    Returns
    -------
    dict with ``base`` (the unperturbed score) and ``drop`` (name -> base - perturbed score); when
    ``score`` gives per-image scores also ``base_per_image`` (n,) and ``perturbed_per_image``
    (name -> (n,), averaged over the repeats), for CIs over images and seeds (:func:`importance_ci`)
    """
    if mode not in ("permute", "mean"):
        raise ValueError(f"mode must be 'permute' or 'mean'; got {mode!r}")
    voxels = np.asarray(voxels)
    masks = _check_groups(groups, voxels.shape[1])
    base = np.asarray(score(voxels), dtype=np.float64)
    rng = np.random.default_rng(seed)
    perturbed = {}
    for name, mask in masks.items():
        scores = []
        for _ in range(n_repeats if mode == "permute" else 1):
            x = voxels.copy()
            x[:, mask] = voxels[rng.permutation(len(voxels))][:, mask] if mode == "permute" else voxels[:, mask].mean(0)
            scores.append(np.asarray(score(x), dtype=np.float64))
        perturbed[name] = np.mean(scores, axis=0)
    out = {"base": float(base.mean()), "drop": {name: float(base.mean() - p.mean()) for name, p in perturbed.items()}}
    if base.ndim == 1:
        out.update(base_per_image=base, perturbed_per_image=perturbed)
    return out


def importance_ci(full, reduced: dict, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Importance of each region with a 95% CI over training seeds and test images: the score of
    the full input (or model) minus the score without the region (shuffled voxels, or a model
    retrained without it).

    Parameters
    ----------
    full : per-image scores ``(n_seeds, n_images)`` with every region
    reduced : dict region -> per-image scores ``(n_seeds, n_images)`` without it, same seeds and images

    Returns
    -------
    dict region -> :func:`~otnsd.analysis.compare.seed_paired_difference` (``mean``, ``low``,
    ``high``, ``n_seeds``, ``seed_sd`` ...)
    """
    from .compare import seed_paired_difference

    return {name: seed_paired_difference(full, r, n_boot=n_boot, seed=seed) for name, r in reduced.items()}


def _check_groups(groups: dict, n_voxels: int) -> dict:
    """Region masks as boolean arrays, each non-empty and over all ``n_voxels`` (checked before any work)."""
    masks = {name: np.asarray(m, dtype=bool) for name, m in groups.items()}
    for name, m in masks.items():
        if m.shape != (n_voxels,) or not m.any():
            raise ValueError(f"group {name!r} must be a non-empty boolean mask over the {n_voxels} voxels")
    return masks
