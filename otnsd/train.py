"""Training of single- and cross-subject brain encoders: the configuration and the loop.

``fit(config, dataset)`` trains a :class:`~otnsd.model.BrainEncoder` with any loss of
:func:`otnsd.ot.get_loss` (or a weighted sum of them): AdamW with a one-cycle schedule, gradient
clipping, one randomly chosen repeat per training sample and step (:mod:`otnsd.batches`), a
validation loss per epoch. Every epoch's randomness is derived from ``(seed, epoch)``, so a run
resumed from its checkpoint ends with the same weights as an uninterrupted one.

A :class:`TrainConfig` and the dataset's fingerprint name a run of the cache (:mod:`otnsd.runs`):
asking twice for the same model trains once, and :func:`fit_many` trains many in parallel.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.std import tqdm  # plain text bars: no widget dependency, same in notebooks and shells

from . import distributed as dd
from . import runs
from .batches import SubjectSplit, epoch_batches, steps_per_epoch, voxel_mask
from .data.rois import REGIONS, check_regions
from .model import BrainEncoder, EncoderConfig
from .ot import LossTerm, get_loss, loss_dict, loss_terms
from .runs import is_cached, run_dir_for  # noqa: F401  (is_cached: importable from here, as before)

TRAIN_VERSION = 2  # bump when the loop changes what a configuration produces
# 2: costs centred and accumulated in float64; validation includes the last, partial batch


@dataclass
class TrainConfig:
    """Everything that determines a trained encoder (with the dataset's fingerprint).

    ``loss`` may be given as a name (``"mse"``), a dict ``{name: {"weight": w, **params}}``,
    :class:`~otnsd.ot.LossTerm` objects or a list of them; it is kept as a tuple of checked
    LossTerms (see :func:`otnsd.ot.loss_terms`).
    """

    subjects: tuple[int, ...] = (1,)
    loss: tuple[LossTerm, ...] = (LossTerm("mse"),)
    preset: str = "small"
    encoder: dict = field(default_factory=dict)  # overrides of the preset's fields
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    subjects_per_step: int = 2
    val_images: int = 200
    seed: int = 0
    regions: tuple[str, ...] | None = None  # train on these regions' voxels only (None: all voxels)
    warm_start: TrainConfig | None = None  # start from this run's trained weights (e.g. MSE, then OT)
    # batches keep each mislabelled training row beside the row that holds its image's responses
    # (datasets that know them: the simulator's mislabel_rate), so that a loss may re-pair them
    keep_true_pairs: bool = False

    def __post_init__(self):
        self.subjects = tuple(int(s) for s in self.subjects)
        if self.regions is not None:
            chosen = set(check_regions(self.regions))
            # canonical order for the cache key; every region is the whole brain (the same model as None)
            self.regions = None if chosen == set(REGIONS) else tuple(r for r in REGIONS if r in chosen)
        if not self.subjects:
            raise ValueError("give at least one subject to train on")
        self.loss = loss_terms(self.loss)  # every check of the loss happens in LossTerm
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")
        if self.val_images < 1:
            raise ValueError(f"val_images must be >= 1 (validation rows held out of training); got {self.val_images}")
        if self.keep_true_pairs and len(self.subjects) > 1:
            raise ValueError("keep_true_pairs is for single-subject training")
        if len(self.subjects) > 1 and not 1 <= self.subjects_per_step <= len(self.subjects):
            raise ValueError(f"subjects_per_step must be in 1..{len(self.subjects)}")
        if isinstance(self.warm_start, dict):  # as written in JSON (python -m otnsd.train)
            self.warm_start = TrainConfig(**self.warm_start)
        if self.warm_start is not None:
            same = ("subjects", "preset", "encoder", "regions")
            differ = [f for f in same if getattr(self.warm_start, f) != getattr(self, f)]
            if differ:
                raise ValueError(f"warm_start must train the same architecture on the same voxels; its {', '.join(differ)} "
                                 "differ from this configuration's")

    def record(self) -> dict:
        """The configuration as plain data, the loss in its dict form (:func:`otnsd.ot.loss_dict`)."""
        warm = None if self.warm_start is None else self.warm_start.record()
        return {**asdict(self), "loss": loss_dict(self.loss), "warm_start": warm}

    def key(self, dataset) -> str:
        """The name of this configuration's run on ``dataset`` in the cache."""
        # The loss is hashed in the dict form configurations were written in before LossTerm
        # existed, so that existing runs keep their keys (term order never mattered: sort_keys).
        # A weight of 1 is left out, so one written explicitly as 1.0 now shares the key of the
        # omitted one: the same model, once.
        config = self.record()
        for name, default in (("regions", None), ("warm_start", None), ("keep_true_pairs", False)):
            if config[name] == default:
                del config[name]  # the default: the same key as before the field existed
        if self.warm_start is not None:
            config["warm_start"] = self.warm_start.key(dataset)  # the run it starts from, by its key
        blob = json.dumps({"config": config, "data": dataset.fingerprint, "version": TRAIN_VERSION},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    model: BrainEncoder
    history: dict
    run_dir: Path
    config: TrainConfig

    def predict_test(self, dataset, subject: int) -> np.ndarray:
        """Brain embeddings of ``subject``'s test images, through this model's voxel mask."""
        mask = voxel_mask(dataset, subject, self.config.regions)
        return predict(self.model, dataset.subject(subject).test_voxels[:, mask], subject)


def build_encoder(cfg: TrainConfig, dataset) -> BrainEncoder:
    T, D = dataset.embedding_shape
    n_voxels = {s: int(voxel_mask(dataset, s, cfg.regions).sum()) for s in cfg.subjects}
    overrides = {"n_tokens": T, "dim": D, **cfg.encoder}
    return BrainEncoder(EncoderConfig.preset(cfg.preset, n_voxels, **overrides))


def fit(cfg: TrainConfig, dataset, runs_dir=None, *, progress: bool = True, device=None) -> TrainResult:
    """Train (or load from the cache) the encoder that ``cfg`` describes on ``dataset``.

    ``device``: where to train (default: the first GPU when there is one, else the CPU); the
    returned model is on the CPU. Inside a ``torch.distributed`` process group (``torchrun``) every
    process trains one replica on its slice of each batch (see :mod:`otnsd.distributed`); process
    0 holds the lock and writes the files, so the run folder must be on a filesystem all
    processes share.
    """
    run = run_dir_for(cfg, dataset, runs_dir)
    if device is None:
        device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    progress = progress and dd.rank_and_world()[0] == 0
    model, history = runs.load_or_train(run, build_encoder(cfg, dataset).cfg,
                                        lambda: _train(cfg, dataset, run, progress, torch.device(device)))
    return TrainResult(model=model, history=history, run_dir=run, config=cfg)


def fit_many(configs, dataset, runs_dir=None, *, workers: int | None = None, progress: bool = True,
             ensemble: bool | int = True) -> dict:
    """Train every configuration not yet in the cache, ``workers`` processes at a time, then load them all.

    Single-subject configurations that differ only in seed, loss or warm start train together as
    batched ensembles (:mod:`otnsd.ensemble`), each member as :func:`fit` would train it up to float
    rounding, and bit for bit the same whichever members it trains beside. Small models train faster as parallel
    one-thread processes than one after another on all cores, so the ensembles are spread over
    ``workers`` forked processes (the dataset is shared, not copied); where fork is unavailable, or
    on a GPU, they train in this process (:func:`otnsd.runs.train_missing`).

    Parameters
    ----------
    configs : dict name -> TrainConfig (or a list)
    workers : int, default min(4, cpu count, runs to train)
    ensemble : bool or int, default True
        True: ensembles of at most :data:`otnsd.ensemble.MAX_MEMBERS`; an int k: at most k; False:
        one model at a time per worker.

    Returns
    -------
    dict name -> TrainResult, in the order of ``configs``
    """
    from .ensemble import fit_group, partition  # it builds on this module

    named = dict(configs) if isinstance(configs, dict) else dict(enumerate(configs))
    if ensemble is not False:
        size = None if ensemble is True else _check_members(ensemble)
        runs.train_missing(named.values(), dataset, runs_dir, functools.partial(fit_group, runs_dir=runs_dir),
                           workers=workers, progress=progress, partition=functools.partial(partition, max_members=size))
    else:
        runs.train_missing(named.values(), dataset, runs_dir, functools.partial(_fit_unit, runs_dir=runs_dir),
                           workers=workers, progress=progress)
    return {name: fit(cfg, dataset, runs_dir, progress=False) for name, cfg in named.items()}


def _check_members(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"ensemble must be True, False or a number of members >= 1; got {k!r}")
    return int(k)


def _fit_unit(unit: list, dataset, runs_dir=None) -> None:
    for cfg in unit:
        fit(cfg, dataset, runs_dir, progress=False)


# ------------------------------------------------------------------------------------ loop
def _evaluate_loss(model, splits, loss_fn, batch_size, device):
    """Row-weighted mean loss over every validation row (the last batch may be smaller)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for s in splits:
            for i in range(0, len(s.val_voxels), batch_size):
                voxels, targets = s.val_voxels[i : i + batch_size], s.val_targets[i : i + batch_size]
                pred = model(voxels.to(device), s.subject)
                total += float(loss_fn(pred, targets.to(device))) * len(voxels)
                count += len(voxels)
    model.train()
    return total / count  # count >= 1: SubjectSplit holds at least one validation row


def make_splits(cfg: TrainConfig, dataset) -> list[SubjectSplit]:
    """The training and validation tensors of each of ``cfg``'s subjects."""
    return [SubjectSplit(dataset, s, cfg.val_images, cfg.regions, keep_true_pairs=cfg.keep_true_pairs) for s in cfg.subjects]


@dataclass
class Prepared:
    """What a run trains with, restored from its checkpoint when there is one (``start`` epochs done)."""

    cfg: TrainConfig
    run: Path
    splits: list
    model: BrainEncoder
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    loss_fn: object
    history: dict
    start: int


def prepare(cfg: TrainConfig, dataset, run: Path, device: torch.device, splits: list | None = None) -> Prepared:
    """Write the run's configuration, build its encoder (seeded by ``cfg.seed``), optimizer and
    schedule, and restore them from the run's checkpoint; a damaged checkpoint is discarded and the
    run starts afresh. Shared by the loop below and the ensemble loop (:mod:`otnsd.ensemble`), which
    hands its members one set of ``splits`` (:func:`make_splits`)."""
    if dd.rank_and_world()[0] == 0:
        runs.write_config(run, cfg.record(), dataset)
    torch.manual_seed(cfg.seed)
    splits = splits or make_splits(cfg, dataset)
    model = build_encoder(cfg, dataset)
    for s in splits:
        model.set_voxel_stats(s.subject, s.mean, s.std)
    if cfg.warm_start is not None:  # trained (or loaded) first, in the same run cache
        model.load_state_dict(fit(cfg.warm_start, dataset, run.parent.parent, progress=False).model.state_dict(), strict=True)
    model.to(device)
    steps = steps_per_epoch(splits, cfg.batch_size)
    if steps < 1:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the training set")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    try:
        resumed = runs.resume(run, device, model, opt, sched)
    except runs.DamagedRunFile:  # discarded; the model and optimizer may be half-restored
        return prepare(cfg, dataset, run, device, splits)
    history, start = resumed or ({"epoch": [], "train_loss": [], "val_loss": [], "val_mse": []}, 0)
    return Prepared(cfg, run, splits, model, opt, sched, get_loss(cfg.loss), history, start)


def _train(cfg: TrainConfig, dataset, run: Path, progress: bool, device: torch.device) -> None:
    rank = dd.rank_and_world()[0]
    p = prepare(cfg, dataset, run, device)
    model, opt, sched, splits, history = p.model, p.opt, p.sched, p.splits, p.history
    # cross-subject steps leave the other subjects' tokenizers unused
    step_model = dd.replicate(model, device, find_unused_parameters=len(cfg.subjects) > 1)
    mse_fn = get_loss("mse")
    model.train()
    bar = tqdm(range(p.start, cfg.epochs), desc=f"train {run.name}", disable=not progress, initial=p.start, total=cfg.epochs)
    for epoch in bar:
        # every process draws the same global batches and keeps its slice of each chunk
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 100003 + epoch)
        losses = []
        for chunks in epoch_batches(splits, cfg.batch_size, cfg.subjects_per_step, rng):
            local = [(s, v[dd.local_slice(len(v))].to(device), t[dd.local_slice(len(t))].to(device)) for s, v, t in chunks]
            preds = step_model([(s, v) for s, v, _ in local])
            loss, value = dd.step_loss(p.loss_fn, preds, torch.cat([t for _, _, t in local]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(value)
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(float(np.mean(losses)))
        history["val_loss"].append(_evaluate_loss(model, splits, p.loss_fn, cfg.batch_size, device))
        history["val_mse"].append(_evaluate_loss(model, splits, mse_fn, cfg.batch_size, device))
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.4g}", val=f"{history['val_loss'][-1]:.4g}")
        if rank == 0:
            runs.save_checkpoint(run, model, opt, sched, history, epoch + 1)
        dd.barrier()
        _maybe_die_for_tests(epoch + 1)
    if rank == 0:
        runs.finish(run, model.cpu(), history)


def _maybe_die_for_tests(epoch: int) -> None:
    # Lets the test suite interrupt a run at a known point, as kill -9 would.
    if os.environ.get("OTNSD_TEST_KILL_AT_EPOCH") == str(epoch):
        os.kill(os.getpid(), 9)


def predict(model: BrainEncoder, voxels, subject: int, batch_size: int = 256) -> np.ndarray:
    """Brain embeddings (n, T, D) for voxels (n, V) of one subject."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(voxels), batch_size):
            v = torch.as_tensor(np.asarray(voxels[i : i + batch_size]), dtype=torch.float32)
            out.append(model(v, subject).numpy())
    return np.concatenate(out)


def main(argv=None) -> None:
    """``python -m otnsd.train`` (or ``torchrun --nproc_per_node=K -m otnsd.train``): train one
    configuration into the cache and print its run folder."""
    import argparse

    from .data import load_dataset

    parser = argparse.ArgumentParser(prog="python -m otnsd.train", description=main.__doc__)
    parser.add_argument("--dataset", default="simulated", help="dataset name for otnsd.data.load_dataset")
    parser.add_argument("--data", default="{}", help='its keyword arguments as JSON, e.g. \'{"seed": 0}\'')
    parser.add_argument("--config", default="{}",
                        help='TrainConfig fields as JSON (e.g. \'{"loss": {"ot": {"lam": 0.5}}, "epochs": 20}\') or a JSON file')
    parser.add_argument("--runs-dir", default=None, help="run cache (default: OTNSD_RUNS, else ./runs)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text() if Path(args.config).is_file() else args.config)
    device = dd.init_from_env()
    if dd.is_distributed() and dd.rank_and_world()[0] == 0:
        print(f"process group: {torch.distributed.get_backend()}, {dd.rank_and_world()[1]} processes", file=sys.stderr)
    try:
        result = fit(TrainConfig(**config), load_dataset(args.dataset, **json.loads(args.data)), args.runs_dir,
                     progress=not args.no_progress, device=device)
        if dd.rank_and_world()[0] == 0:
            print(result.run_dir)
    finally:
        if dd.is_distributed():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
