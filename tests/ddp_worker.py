"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=2``: one training step of a
tiny encoder on each process's slice of a fixed batch, for several losses; process 0 saves the
logged loss values and the (DDP-averaged) gradients."""

import sys

import torch

from otnsd import distributed as dd
from otnsd.model import BrainEncoder, EncoderConfig
from otnsd.ot import get_loss
from otnsd.train import _Chunks

LOSSES = {
    "ot sample": {"ot": {"lam": 0.5}},
    "ot token": {"ot": {"lam": 0.5, "level": "token", "cost": "euclidean"}},
    "mse + ot": {"mse": {}, "ot": {"lam": 0.7}},
    "infonce": {"infonce": {}},
    "mse": {"mse": {}},
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
    x, y = batch()
    rows = dd.local_slice(len(x))
    results = {}
    for name, spec in LOSSES.items():
        net = model()
        ddp = torch.nn.parallel.DistributedDataParallel(_Chunks(net))
        loss, value = dd.step_loss(get_loss(spec), ddp([(1, x[rows])]), y[rows])
        loss.backward()
        results[name] = {"loss": value, "grads": {k: p.grad.clone() for k, p in net.named_parameters()}}
    if dd.rank_and_world()[0] == 0:
        torch.save(results, out)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
