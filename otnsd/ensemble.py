"""Several brain encoders of one architecture trained as one batched model.

A ``tiny`` or ``small`` encoder's training step is a few dozen small matrix products and
element-wise operations, with an optimizer step over every parameter tensor: on a CPU part of its
time is per-operation overhead. :class:`EnsembleEncoder` holds ``k`` members' parameters stacked
along a first axis (``(k, ...)``) and runs the Perceiver as batched products (``torch.bmm``, one
attention call over ``k * B`` samples) and the optimizer as one fused step, so ``k`` models cost
about as many operations as one; the large voxel projections run member by member, which keeps
each in the CPU's cache. Nothing mixes members: every operation acts on each member's slice alone,
so a member's output, loss and gradient are those of the same :class:`~otnsd.model.BrainEncoder`
run alone, up to float rounding (``benchmarks/bench_ensemble.py`` measures what it gains).

:func:`~otnsd.train.fit_many` uses it to train configurations that differ only in seed, loss and
warm start (:func:`ensemble_key`) together, each member with its own batches, loss, gradient
clipping, checkpoints and run folder.
"""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.std import tqdm

from . import runs
from . import train as _train
from .batches import epoch_batches
from .model import BrainEncoder
from .ot import get_loss

__all__ = ["EnsembleEncoder", "ensemble_key", "fit_group", "partition"]

MAX_MEMBERS = 5  # members per ensemble (see benchmarks/bench_ensemble.py)


class EnsembleEncoder(nn.Module):
    """``k`` single-subject :class:`~otnsd.model.BrainEncoder` s of one architecture, stacked.

    Parameters
    ----------
    members : list of BrainEncoder
        Same :class:`~otnsd.model.EncoderConfig`, one subject, no dropout. Their parameters and
        voxel statistics are copied; :meth:`member` gives each back as a ``BrainEncoder``.

    Notes
    -----
    ``self.stacked[j]`` is parameter ``j`` of ``BrainEncoder.parameters()`` for every member,
    shape ``(k, *shape)``: an optimizer over ``self.parameters()`` keeps, for member ``i``, the
    state that one over ``members[i].parameters()`` keeps, at index ``[i]``.

    Examples
    --------
    >>> from otnsd.model import EncoderConfig
    >>> cfg = EncoderConfig.preset("tiny", {1: 30})
    >>> ens = EnsembleEncoder([BrainEncoder(cfg), BrainEncoder(cfg)])
    >>> ens(torch.randn(2, 5, 30)).shape
    torch.Size([2, 5, 16, 64])
    """

    def __init__(self, members: list[BrainEncoder]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        cfg = members[0].cfg
        if any(m.cfg != cfg for m in members):
            raise ValueError("the members of an ensemble must share one EncoderConfig (architecture and voxel counts)")
        if len(cfg.subjects) != 1 or cfg.dropout:
            raise ValueError("an ensemble holds single-subject encoders without dropout")
        self.cfg, self.subject, self.k = cfg, cfg.subjects[0], len(members)
        self.names = [name for name, _ in members[0].named_parameters()]
        self.stacked = nn.ParameterList(
            [nn.Parameter(torch.stack([p.detach() for p in ps]).clone()) for ps in zip(*(m.parameters() for m in members))])
        tok = f"tokenizers.{self.subject}."
        for buf in ("voxel_mean", "voxel_std"):
            self.register_buffer(buf, torch.stack([m.get_buffer(tok + buf) for m in members]).clone())

    def _params(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.stacked))

    def forward(self, voxels) -> torch.Tensor:
        """Voxels ``(k, B, V)`` or a list of ``k`` arrays ``(B, V)``, member ``i``'s batch at ``[i]``
        -> brain tokens ``(k, B, n_tokens, dim)``."""
        k, cfg, V = self.k, self.cfg, self.cfg.n_voxels[self.subject]
        if len(voxels) != k or any(v.dim() != 2 or v.shape[1] != V or v.shape[0] != voxels[0].shape[0] for v in voxels):
            raise ValueError(f"an ensemble of {k} needs {k} batches of voxels of one shape (batch, {V})")
        p, B = self._params(), voxels[0].shape[0]
        tok = f"tokenizers.{self.subject}."
        # member by member: the (V, width) projections are the large tensors, and one at a time
        # stays in the CPU's cache (stacked, the step would be memory-bound)
        # (unbind, not indexing: the gradient of weight[i] would be a zero (k, width, V) tensor per member)
        per_member = zip(voxels, self.voxel_mean, self.voxel_std, p[tok + "project.weight"].unbind(0),
                         p[tok + "project.bias"].unbind(0))
        h = torch.stack([F.linear((v - mean) / std, weight, bias) for v, mean, std, weight, bias in per_member])
        media = p[tok + "token_scale"][:, None, :, None] * h[:, :, None, :] + p[tok + "token_shift"][:, None]
        if cfg.subject_tokens:
            token = p[f"subject_token.{self.subject}"][:, None].expand(k, B, 1, cfg.width)
            media = torch.cat([media, token], dim=2)
        latents = p["resampler.latents"][:, None].expand(k, B, -1, -1)
        for i in range(cfg.depth):
            at, ff = f"resampler.layers.{i}.0.", f"resampler.layers.{i}.1."
            latents = latents + self._attention(media, latents, p, at)
            x = _layer_norm(latents, p[ff + "0.weight"], p[ff + "0.bias"])
            latents = latents + _linear(F.gelu(_linear(x, p[ff + "1.weight"])), p[ff + "3.weight"])
        out = _layer_norm(latents, p["resampler.norm.weight"], p["resampler.norm.bias"])
        return _linear(out, p["head.weight"], p["head.bias"])

    def _attention(self, media, latents, p, at):
        k, B, n_q, _ = latents.shape
        heads = self.cfg.heads
        latents_n = _layer_norm(latents, p[at + "norm_latents.weight"], p[at + "norm_latents.bias"])
        kv_in = torch.cat([_layer_norm(media, p[at + "norm_media.weight"], p[at + "norm_media.bias"]), latents_n], dim=2)
        n_kv = kv_in.shape[2]
        # members and samples share the attention call's batch axis: (k * B, heads, n, dim_head)
        q = _linear(latents_n, p[at + "to_q.weight"]).reshape(k * B, n_q, heads, -1).transpose(1, 2)
        key, value = _linear(kv_in, p[at + "to_kv.weight"]).chunk(2, dim=-1)
        key = key.reshape(k * B, n_kv, heads, -1).transpose(1, 2)
        value = value.reshape(k * B, n_kv, heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, key, value)
        return _linear(out.transpose(1, 2).reshape(k, B, n_q, -1), p[at + "to_out.weight"])

    def load_member(self, i: int, model: BrainEncoder) -> BrainEncoder:
        """Copy member ``i``'s parameters (and voxel statistics) into ``model``; returns it."""
        with torch.no_grad():
            for target, stacked in zip(model.parameters(), self.stacked):
                target.copy_(stacked[i])
            tok = model.tokenizers[str(self.subject)]
            tok.voxel_mean.copy_(self.voxel_mean[i])
            tok.voxel_std.copy_(self.voxel_std[i])
        return model

    def member(self, i: int) -> BrainEncoder:
        """Member ``i`` as a stand-alone :class:`~otnsd.model.BrainEncoder` (a copy, on the CPU)."""
        return self.load_member(i, BrainEncoder(self.cfg)).cpu()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale each member's gradient to a total norm of at most ``max_norm``, as
        ``torch.nn.utils.clip_grad_norm_`` does for one model; returns the ``k`` norms before."""
        grads = [p.grad for p in self.stacked if p.grad is not None]
        # row by row (k, n): the same reduction whatever k is, so a member does not depend on its companions
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(self.k, -1), dim=1) for g in grads], dim=1)
        total = torch.linalg.vector_norm(norms, dim=1)
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
        return total


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight[i].T + bias[i]`` for each member ``i``: x ``(k, ..., in)``, weight ``(k, out, in)``."""
    k, shape = x.shape[0], x.shape[1:-1]
    x2 = x.reshape(k, -1, x.shape[-1])
    y = torch.bmm(x2, weight.transpose(1, 2)) if bias is None else torch.baddbmm(bias[:, None], x2, weight.transpose(1, 2))
    return y.reshape(k, *shape, weight.shape[1])


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last axis with member ``i``'s affine ``weight[i]``, ``bias[i]``."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return F.layer_norm(x, x.shape[-1:], eps=eps) * weight.view(shape) + bias.view(shape)


# ------------------------------------------------------------------------------------ training
def ensemble_key(cfg) -> str | None:
    """What the members of one ensemble share: every field of the configuration but ``seed``,
    ``loss``, ``warm_start`` and ``keep_true_pairs`` (each member draws its own batches). None for
    a configuration trained alone: several subjects (each step draws its subjects at random) or
    dropout (its random masks)."""
    if len(cfg.subjects) != 1 or cfg.encoder.get("dropout", 0):
        return None
    shared = {k: v for k, v in cfg.record().items() if k not in ("seed", "loss", "warm_start", "keep_true_pairs")}
    return json.dumps(shared, sort_keys=True, default=str)


def partition(cfgs: list, workers: int, max_members: int | None = None) -> list[list]:
    """Split configurations into units of training: configurations of one :func:`ensemble_key`
    into ensembles of at most ``max_members`` (default :data:`MAX_MEMBERS`), spread over at least
    ``workers`` units where there are enough of them; the others alone."""
    max_members = max_members or MAX_MEMBERS
    groups: dict[str | None, list] = {}
    for cfg in cfgs:
        groups.setdefault(ensemble_key(cfg), []).append(cfg)
    units = [[cfg] for cfg in groups.pop(None, [])]
    for members in groups.values():
        n = max(math.ceil(len(members) / max_members), min(workers, len(members)))
        units += [members[i::n] for i in range(n)]
    return units


def fit_group(cfgs: list, dataset, runs_dir=None, *, device=None, progress: bool = False) -> None:
    """Train the unfinished runs among ``cfgs`` (one :func:`ensemble_key`) as one ensemble.

    Each member's run folder, configuration file, checkpoints (every epoch) and result are those
    :func:`~otnsd.train.fit` writes, so a run can be resumed by either; the runs' locks are held
    while they train. Members resumed at different epochs train as separate ensembles.
    """
    if len({ensemble_key(c) for c in cfgs}) != 1 or ensemble_key(cfgs[0]) is None:
        if len(cfgs) == 1:
            _train.fit(cfgs[0], dataset, runs_dir, progress=progress, device=device)
            return
        raise ValueError("an ensemble trains single-subject configurations that differ only in seed, loss and warm start")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    by_key = {c.key(dataset): c for c in cfgs}
    if any(c.warm_start is not None and c.warm_start.key(dataset) in by_key for c in cfgs):
        raise ValueError("a member's warm start is another member: train the warm start first")
    with contextlib.ExitStack() as stack:
        todo = []
        for key in sorted(by_key):  # one order for every process: two groups never wait on each other
            run = runs.run_dir_for(by_key[key], dataset, runs_dir)
            run.mkdir(parents=True, exist_ok=True)
            stack.enter_context(runs.locked(run.parent / f"{run.name}.lock"))
            if not (run / runs.DONE).exists():
                todo.append((by_key[key], run))
        splits, prepared = {}, []  # one copy of the tensors per keep_true_pairs (the rest is shared)
        for cfg, run in todo:
            if cfg.keep_true_pairs not in splits:
                splits[cfg.keep_true_pairs] = _train.make_splits(cfg, dataset)
            prepared.append(_train.prepare(cfg, dataset, run, device, splits[cfg.keep_true_pairs]))
        for start in sorted({p.start for p in prepared}):
            _train_members([p for p in prepared if p.start == start], device, progress)


def _train_members(members: list, device: torch.device, progress: bool) -> None:
    cfg, k = members[0].cfg, len(members)
    ens = EnsembleEncoder([m.model for m in members]).to(device)
    # fused: one pass over each stacked tensor instead of one per operation (memory-bound otherwise)
    opt = torch.optim.AdamW(ens.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=members[0].sched.total_steps)
    opt.load_state_dict(_stacked_optimizer_state([m.opt.state_dict() for m in members], fused=True))
    sched.load_state_dict(members[0].sched.state_dict())
    mse_fn = get_loss("mse")
    val = members[0].splits[0]  # every member validates on the same rows
    bar = tqdm(range(members[0].start, cfg.epochs), desc=f"train {k} models", disable=not progress,
               initial=members[0].start, total=cfg.epochs)
    for epoch in bar:
        batches = [epoch_batches(m.splits, cfg.batch_size, cfg.subjects_per_step, np.random.default_rng([m.cfg.seed, epoch]))
                   for m in members]
        losses = []
        for steps in zip(*batches):  # one (subject, voxels, targets) chunk per member
            preds = ens([chunks[0][1].to(device) for chunks in steps])
            loss = [m.loss_fn(preds[i], steps[i][0][2].to(device)) for i, m in enumerate(members)]
            opt.zero_grad(set_to_none=True)
            torch.stack(loss).sum().backward()  # members share no parameter: each gets its own gradient
            ens.clip_grad_norm_(cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(torch.stack(loss).detach())
        train_loss = torch.stack(losses).double().mean(0)
        val_loss, val_mse = _validation_losses(ens, val, [[m.loss_fn, mse_fn] for m in members], cfg.batch_size, device)
        state = opt.state_dict()
        for i, m in enumerate(members):
            m.history["epoch"].append(epoch + 1)
            m.history["train_loss"].append(float(train_loss[i]))
            m.history["val_loss"].append(val_loss[i])
            m.history["val_mse"].append(val_mse[i])
            ens.load_member(i, m.model)
            m.opt.load_state_dict(_member_optimizer_state(state, i, m.opt.state_dict()))
            m.sched.load_state_dict(sched.state_dict())
            runs.save_checkpoint(m.run, m.model, m.opt, m.sched, m.history, epoch + 1)
        _train._maybe_die_for_tests(epoch + 1)
    for i, m in enumerate(members):
        runs.finish(m.run, ens.member(i), m.history)


def _validation_losses(ens, split, loss_fns: list[list], batch_size: int, device) -> list[list[float]]:
    """Row-weighted mean losses over the validation rows (as the one-model loop computes them):
    ``loss_fns[i]`` are member ``i``'s losses; returns one list per loss, one value per member."""
    totals, count = np.zeros((len(loss_fns[0]), ens.k)), 0
    with torch.no_grad():
        for i in range(0, len(split.val_voxels), batch_size):
            voxels, targets = split.val_voxels[i : i + batch_size].to(device), split.val_targets[i : i + batch_size].to(device)
            preds = ens([voxels] * ens.k)
            for j, fns in enumerate(loss_fns):
                for n, fn in enumerate(fns):
                    totals[n, j] += float(fn(preds[j], targets)) * len(voxels)
            count += len(voxels)
    return (totals / count).tolist()


def _stacked_optimizer_state(states: list[dict], **options) -> dict:
    """The members' AdamW states as one over their stacked parameters (steps are equal), with
    ``options`` (e.g. ``fused``) set in its parameter groups."""
    stacked = {}
    for j, first in states[0]["state"].items():
        stacked[j] = {name: value if name == "step" else torch.stack([s["state"][j][name] for s in states])
                      for name, value in first.items()}
    return {"state": stacked, "param_groups": [{**g, **options} for g in states[0]["param_groups"]]}


def _member_optimizer_state(state: dict, i: int, own: dict) -> dict:
    """Member ``i``'s part of the ensemble's AdamW state, as its own optimizer (whose state is
    ``own``) would hold it: the ensemble's hyperparameters, the member's implementation options."""
    options = ("fused", "foreach")
    return {"state": {j: {name: value if name == "step" else value[i].clone() for name, value in s.items()}
                      for j, s in state["state"].items()},
            "param_groups": [{**g, **{o: mine[o] for o in options if o in mine}}
                             for g, mine in zip(state["param_groups"], own["param_groups"])]}
