"""The cost matrix of eq. 9, computed so that float32 does not cancel (centred, float64 sums)."""

from __future__ import annotations

import torch

from ._checks import COSTS, _check_choice


def cost_matrix(x: torch.Tensor, y: torch.Tensor, cost: str = "sqeuclidean") -> torch.Tensor:
    r"""Pairwise cost between two point clouds (eq. 9).

    Parameters
    ----------
    x : tensor, shape (N, D) or (B, N, D)
    y : tensor, shape (M, D) or (B, M, D)
    cost : {"sqeuclidean", "euclidean"}
        :math:`\|x_i - y_j\|^2` or :math:`\|x_i - y_j\|`.

    Returns
    -------
    C : tensor, shape (N, M) or (B, N, M), in the dtype of ``x``
        Differentiable in ``x`` and ``y``; the Euclidean cost has a zero (not NaN) gradient where
        two points coincide.

    Notes
    -----
    Squared distances use the matmul identity :math:`\|x\|^2 + \|y\|^2 - 2 x^\top y` (clamped at
    0), which cancels catastrophically when the norms dwarf the distances (float32 embeddings far
    from the origin). Both clouds are therefore shifted by the same centre (distances do not
    change) and the identity is evaluated in float64; the result is cast back to ``x``'s dtype.
    """
    _check_choice("cost", cost, COSTS)
    work = torch.float32 if x.device.type == "mps" else torch.float64  # MPS has no float64
    centre = 0.5 * (x.detach().mean(-2, keepdim=True) + y.detach().mean(-2, keepdim=True))
    xw, yw = (x - centre).to(work), (y - centre).to(work)
    x2 = (xw * xw).sum(-1, keepdim=True)
    y2 = (yw * yw).sum(-1, keepdim=True).transpose(-1, -2)
    sq = torch.baddbmm(x2 + y2, xw, yw.transpose(-1, -2), alpha=-2) if x.dim() == 3 else torch.addmm(
        x2 + y2, xw, yw.T, alpha=-2
    )
    sq = sq.clamp_min(0)
    if cost == "euclidean":
        # sqrt has an infinite derivative at 0: route zeros through a constant branch.
        positive = sq > 0
        sq = torch.where(positive, torch.sqrt(torch.where(positive, sq, torch.ones_like(sq))), 0.0)
    return sq.to(x.dtype)


def _check_cost_range(C: torch.Tensor, x: torch.Tensor) -> None:
    """Finite inputs whose costs overflow the working dtype get their own message."""
    if bool(torch.isfinite(C.sum())) or torch.isfinite(C).all():
        return
    raise ValueError(
        f"the costs overflow {C.dtype} (largest |input| {float(x.detach().abs().max()):.3g}): the inputs are "
        "finite but their squared distances are not representable; rescale the embeddings (e.g. "
        "normalise them) or pass float64 tensors"
    )


