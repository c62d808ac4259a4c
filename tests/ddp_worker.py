"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=2``: one training step of a
tiny encoder on each process's slice of a fixed batch, for several losses; process 0 saves the
logged loss values, the (DDP-averaged) gradients, how many tensors each step gathered and the
batch sizes that the two losses registered here saw."""

import sys

import torch

from otnsd import distributed as dd
from otnsd.model import BrainEncoder, EncoderConfig
from otnsd.ot import get_loss, register_loss

SEEN: list[int] = []  # batch sizes the losses below were called with


# A new loss is its registration and nothing else: the training step reads the declaration.
@register_loss("ddp_test_l1", couples_samples=False)
def l1_loss(x, y):
    SEEN.append(len(x))
    return (x - y).abs().flatten(1).sum(1).mean()


@register_loss("ddp_test_spread", couples_samples=True)
def spread_loss(x, y):
    """Matched pairs close, every brain sample away from the batch's images on average."""
    SEEN.append(len(x))
    C = torch.cdist(x.flatten(1), y.flatten(1)).pow(2)
    return C.diagonal().mean() - 0.1 * C.mean()


LOSSES = {
    "ot sample": {"ot": {"lam": 0.5}},
    "ot token": {"ot": {"lam": 0.5, "level": "token", "cost": "euclidean"}},
    "mse + ot": {"mse": {}, "ot": {"lam": 0.7}},
    "infonce": {"infonce": {}},
    "mse": {"mse": {}},
    "l1": {"ddp_test_l1": {}},
    "spread": {"ddp_test_spread": {}},
}


def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 30, generator=g), torch.randn(8, 4, 8, generator=g)


def model():
    torch.manual_seed(0)
    cfg = EncoderConfig(n_voxels={1: 30}, n_tokens=4, dim=8, width=16, n_voxel_tokens=4, depth=1, heads=2, dim_head=8)
    return BrainEncoder(cfg)


def main(out):
    dd.init_from_env()
    gathered = []
    gather = dd.gather
    dd.gather = lambda x, **kw: gathered.append(tuple(x.shape)) or gather(x, **kw)
    x, y = batch()
    rows = dd.local_slice(len(x))
    results = {}
    for name, spec in LOSSES.items():
        net = model()
        ddp = dd.replicate(net, torch.device("cpu"))
        gathered.clear()
        SEEN.clear()
        loss, value = dd.step_loss(get_loss(spec), ddp([(1, x[rows])]), y[rows])
        loss.backward()
        results[name] = {"loss": value, "grads": {k: p.grad.clone() for k, p in net.named_parameters()},
                         "gathered": list(gathered), "seen": list(SEEN)}
    if dd.rank_and_world()[0] == 0:
        torch.save(results, out)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
