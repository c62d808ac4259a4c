r"""Partial optimal transport between brain and image embeddings (paper eq. 9-14).

Problem
-------
Given brain embeddings :math:`x_1..x_N` and image embeddings :math:`y_1..y_M`, the cost is

.. math:: C_{ij} = \|x_i - y_j\|^2 \quad\text{(eq. 9, ``cost="sqeuclidean"``)}

or the plain distance :math:`\|x_i - y_j\|` (``cost="euclidean"``, what the paper's released code
uses through ``torch.cdist``). With uniform weights :math:`a = \mathbf{1}/N`, :math:`b = \mathbf{1}/M`
(eq. 10) and transported mass :math:`m = \lambda \min(\sum a, \sum b)` (eq. 11), the partial plan is

.. math::

    \gamma^* = \arg\min_{\gamma \ge 0} \langle \gamma, C \rangle
    \quad\text{s.t.}\quad \gamma \mathbf{1} \le a,\; \gamma^\top \mathbf{1} \le b,\;
    \mathbf{1}^\top \gamma \mathbf{1} = m                           \qquad\text{(eq. 12-13)}

and the loss is :math:`L_{OT} = \sum_{ij} \gamma^*_{ij} C_{ij}` (eq. 14). Gradients follow the
envelope theorem: :math:`\gamma^*` is held constant and the gradient flows through :math:`C` only.

Two levels
----------
``level="sample"`` (the paper's text): one N x N problem between the N samples of a batch, each
sample's features flattened. ``level="token"`` (the released code): one T x T problem per sample
between its T brain tokens and its T image tokens; the per-sample losses are averaged.

With :math:`\gamma = I/N`, :math:`L_{OT}` equals :func:`mse_loss` exactly at either level (the paper's
eq. 17-18); since the identity is feasible when :math:`\lambda = 1`, exact OT is then never above MSE.

Solvers
-------
``"exact"``: POT's network simplex on the partial problem (``ot.partial.partial_wasserstein``,
float64, on the CPU). ``"sinkhorn"``: a batched, log-domain entropic solver in torch on the input's
device; block-coordinate ascent on the dual of the entropic problem, which is Dykstra's algorithm
for the three KL projections of Benamou et al. (2015). ``"auto"``: the faster of the two for the
problem's size and device (see :func:`choose_solver`).

References
----------
.. [1] Benamou, Carlier, Cuturi, Nenna, Peyré (2015). Iterative Bregman projections for regularized
   transportation problems. SIAM J. Sci. Comput. 37(2).
.. [2] Chapel, Alaya, Gasso (2020). Partial optimal transport with applications on positive-unlabeled
   learning. NeurIPS.
.. [3] Flamary et al. (2021). POT: Python Optimal Transport. JMLR 22(78).
"""


from ._checks import COSTS, LEVELS, SOLVERS
from .cost import cost_matrix
from .losses import huber_loss, infonce_loss, mse_loss, partial_ot_loss, trimmed_mse_loss
from .registry import LossTerm, available_losses, get_loss, loss_dict, loss_terms, register_loss
from .solvers import choose_solver, partial_plan

__all__ = [
    "cost_matrix",
    "partial_plan",
    "partial_ot_loss",
    "mse_loss",
    "infonce_loss",
    "trimmed_mse_loss",
    "huber_loss",
    "choose_solver",
    "get_loss",
    "register_loss",
    "available_losses",
    "LossTerm",
    "loss_terms",
    "loss_dict",
    "LEVELS",
    "COSTS",
    "SOLVERS",
]
