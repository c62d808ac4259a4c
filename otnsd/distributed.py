"""Data-parallel training over processes (``torchrun``): the pieces the training loop needs.

Every process holds a replica of the encoder (``DistributedDataParallel``) and one slice of each
global batch. A loss that couples the samples of a batch, as its registration declares
(``otnsd.ot.register_loss(couples_samples=...)``: sample-level OT, whose plan matches every brain
sample with every image; InfoNCE), is computed on the whole global batch: predictions are
gathered from all processes, the process's own slice keeping its autograd graph, the others
entering as constants. Each process then holds the same loss value ``L``, and the gradient reaching
its own predictions is exactly ``dL/dpred_local``; since DDP averages the parameter gradients
over the K processes, each process back-propagates ``K * L`` so that the average is the
single-process gradient ``sum_k dL/dpred_k dpred_k/dtheta``. A per-sample loss (MSE, token-level
OT) is averaged over the local slice and needs no gathering: the DDP average of the local means is
the global mean.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Inside a process group (a ``torchrun`` launch, one process included: its DDP all-reduces
    and barriers then run over NCCL or gloo as with several)."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def init_from_env() -> torch.device:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``): NCCL on GPUs, gloo on CPUs. Returns the
    device this process should train on. A plain ``python`` run stays single; a ``torchrun`` launch
    joins even with one process (so that one GPU checks the NCCL path)."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    launched = "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", 1)) > 1
    if launched and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
    return device


class Chunks(torch.nn.Module):
    """One forward of an encoder over the (subject, voxels) chunks of a step, concatenated: DDP
    wants one forward per backward."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, chunks):
        return torch.cat([self.encoder(v, s) for s, v in chunks])


def replicate(encoder: torch.nn.Module, device: torch.device, *, find_unused_parameters: bool = False) -> torch.nn.Module:
    """The module a training step calls: :class:`Chunks` of ``encoder``, inside a process group
    wrapped in ``DistributedDataParallel``."""
    step_model = Chunks(encoder)
    if not is_distributed():
        return step_model
    return torch.nn.parallel.DistributedDataParallel(
        step_model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=find_unused_parameters)


def local_slice(n: int) -> slice:
    """This process's rows of a global chunk of ``n`` rows (contiguous, equal parts)."""
    rank, world = rank_and_world()
    if n % world:
        raise ValueError(f"a chunk of {n} samples cannot be split evenly over {world} processes: "
                         f"choose batch_size / subjects_per_step divisible by the number of processes")
    k = n // world
    return slice(rank * k, (rank + 1) * k)


def gather(x: torch.Tensor, *, keep_grad: bool = False) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0, in rank order. With ``keep_grad`` the
    local part is ``x`` itself (gradients flow to it); the other parts are constants."""
    rank, world = rank_and_world()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous())
    if keep_grad:
        parts[rank] = x
    return torch.cat(parts)


def step_loss(loss_fn, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The loss to back-propagate on this process, and the global loss value to log.

    ``loss_fn`` must declare ``couples_samples`` (True or False), as the losses of
    :func:`otnsd.ot.get_loss` do: whether the step gathers the whole batch depends on it. Outside
    a process group: ``loss_fn(pred, target)`` and its value.
    """
    couples = getattr(loss_fn, "couples_samples", None)
    if not isinstance(couples, bool):
        # checked in one process too, so that a loss fails before it meets torchrun
        raise TypeError(
            f"the loss {loss_fn!r} does not declare couples_samples (True or False): build it with "
            "otnsd.ot.get_loss, or register it with otnsd.ot.register_loss(name, couples_samples=...)"
        )
    rank, world = rank_and_world()
    if world == 1:
        loss = loss_fn(pred, target)
        return loss, float(loss.detach())
    if couples:
        loss = loss_fn(gather(pred, keep_grad=True), gather(target))
        return loss * world, float(loss.detach())  # DDP averages: restore the sum over processes
    loss = loss_fn(pred, target)
    value = loss.detach().clone()
    dist.all_reduce(value)
    return loss, float(value) / world


def any_true(flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (``flag`` itself outside a group)."""
    if not is_distributed():
        return flag
    t = torch.tensor([int(flag)], device=_collective_device())
    dist.all_reduce(t)
    return bool(t.item())


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _collective_device() -> torch.device:
    # NCCL only moves GPU tensors
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
