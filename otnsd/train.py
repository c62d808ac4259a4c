"""One training loop for single- and cross-subject brain encoders, cached by configuration.

``fit(config, dataset)`` trains a :class:`~otnsd.model.BrainEncoder` with any loss of
:func:`otnsd.ot.get_loss` (or a weighted sum of them): AdamW with a one-cycle schedule, gradient
clipping, one randomly chosen repeat per training sample and step, a validation loss per epoch.
Cross-subject training draws ``subjects_per_step`` subjects at random for every step and takes
half of the batch from each, as the paper does.

Runs are cached under ``<runs>/train/<key>/`` where ``key`` hashes the full configuration and the
dataset's fingerprint: asking twice for the same model trains once. A file lock serialises two
processes asking for the same run; a checkpoint is written atomically after every epoch, and an
interrupted run (even by ``kill -9``) resumes from it and ends with the same weights as an
uninterrupted one (every epoch's randomness is derived from ``(seed, epoch)``). A run counts as
finished only once its ``DONE`` marker exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.std import tqdm  # plain text bars: no widget dependency, same in notebooks and shells

from . import distributed as dd
from .data.rois import REGIONS, check_regions
from .model import BrainEncoder, EncoderConfig, load_encoder, save_encoder
from .ot import LossTerm, get_loss, loss_dict, loss_terms
from .paths import atomic_path
from .paths import runs_dir as _runs_dir

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
        if len(self.subjects) > 1 and not 1 <= self.subjects_per_step <= len(self.subjects):
            raise ValueError(f"subjects_per_step must be in 1..{len(self.subjects)}")

    def record(self) -> dict:
        """The configuration as plain data, the loss in its dict form (:func:`otnsd.ot.loss_dict`)."""
        return {**asdict(self), "loss": loss_dict(self.loss)}

    def key(self, dataset) -> str:
        # The loss is hashed in the dict form configurations were written in before LossTerm
        # existed, so that existing runs keep their keys (term order never mattered: sort_keys).
        # A weight of 1 is left out, so one written explicitly as 1.0 now shares the key of the
        # omitted one: the same model, once.
        config = self.record()
        if config["regions"] is None:
            del config["regions"]  # all voxels: the same key as before region masking existed
        blob = json.dumps(
            {"config": config, "data": dataset.fingerprint, "version": TRAIN_VERSION},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def voxel_mask(dataset, subject: int, regions=None) -> np.ndarray:
    """Boolean mask of the voxels a model of ``regions`` sees (all voxels when None). The other
    regions' voxels are removed from the input, not zeroed."""
    d = dataset.subject(subject)
    return np.ones(d.n_voxels, dtype=bool) if regions is None else d.region_mask(regions)


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


# ------------------------------------------------------------------------------------ data
class _SubjectSplit:
    """One subject's training and validation tensors (float32, CPU)."""

    def __init__(self, dataset, subject: int, val_images: int, regions=None):
        d = dataset.subject(subject)
        n = len(d.train_image_ids)
        n_val = min(val_images, n // 5)
        if n_val < 1:
            raise ValueError(f"subject {subject} has {n} training images: too few to hold out validation rows (need >= 5)")
        self.subject = subject
        voxels = d.train_voxels if regions is None else d.train_voxels[:, :, voxel_mask(dataset, subject, regions)]
        # kept in the dataset's dtype (real NSD: float16, half the memory); batches become float32
        self.train_voxels = torch.from_numpy(np.ascontiguousarray(voxels[: n - n_val]))
        self.train_targets = torch.from_numpy(dataset.image_embeddings(d.train_image_ids[: n - n_val]))
        self.val_voxels = torch.from_numpy(np.ascontiguousarray(voxels[n - n_val :].astype(np.float32).mean(1)))
        self.val_targets = torch.from_numpy(dataset.image_embeddings(d.train_image_ids[n - n_val :]))
        flat = self.train_voxels.reshape(-1, self.train_voxels.shape[-1])
        if flat.dtype == torch.float32:
            self.mean, self.std = flat.mean(0), flat.std(0)
        else:
            self.mean, self.std = _chunked_mean_std(flat)

    def __len__(self):
        return len(self.train_voxels)

    def batch(self, idx: np.ndarray, rng: np.random.Generator):
        reps = rng.integers(self.train_voxels.shape[1], size=len(idx))
        voxels = self.train_voxels[torch.from_numpy(idx), torch.from_numpy(reps)].float()
        return voxels, self.train_targets[torch.from_numpy(idx)]


def _chunked_mean_std(x: torch.Tensor, rows: int = 4096):
    """Per-column mean and (unbiased) std of a low-precision matrix, without a float32 copy of it."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, len(x), rows):
        block = x[i : i + rows].double()
        total += block.sum(0)
        squares += (block**2).sum(0)
    mean = total / len(x)
    var = (squares - len(x) * mean**2) / (len(x) - 1)
    return mean.float(), var.clamp_min(0).sqrt().float()


def _epoch_batches(splits: list[_SubjectSplit], cfg: TrainConfig, rng: np.random.Generator):
    """Yield (subject, voxel, target) chunks for each step of one epoch."""
    if len(splits) == 1:
        s = splits[0]
        perm = rng.permutation(len(s))
        for i in range(_steps_per_epoch(splits, cfg)):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            yield [(s.subject, *s.batch(idx, rng))]
        return
    perms = {s.subject: list(rng.permutation(len(s))) for s in splits}
    per = cfg.batch_size // cfg.subjects_per_step
    for _ in range(_steps_per_epoch(splits, cfg)):
        chosen = rng.choice(len(splits), size=cfg.subjects_per_step, replace=False)
        chunks = []
        for k in sorted(chosen):
            s = splits[k]
            if len(perms[s.subject]) < per:
                perms[s.subject] = list(rng.permutation(len(s)))
            idx = np.array(perms[s.subject][:per])
            del perms[s.subject][:per]
            chunks.append((s.subject, *s.batch(idx, rng)))
        yield chunks


def _steps_per_epoch(splits, cfg):
    return sum(len(s) for s in splits) // cfg.batch_size


# ------------------------------------------------------------------------------------ files
def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _atomic_write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_dir_for(cfg: TrainConfig, dataset, runs_dir=None) -> Path:
    return _runs_dir(runs_dir) / "train" / cfg.key(dataset)


def is_cached(cfg: TrainConfig, dataset, runs_dir=None) -> bool:
    return (run_dir_for(cfg, dataset, runs_dir) / "DONE").exists()


# ------------------------------------------------------------------------------------ fit
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
    rank, world = dd.rank_and_world()
    if device is None:
        device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
    expected = build_encoder(cfg, dataset).cfg
    loaded = None
    with _locked(run.parent / f"{run.name}.lock") if rank == 0 else contextlib.nullcontext():
        if rank == 0 and (run / "DONE").exists():
            try:
                loaded = _load_run(run, expected)
            except _DamagedRunFile as err:
                warnings.warn(f"{err}; discarding the run and training it again", UserWarning, stacklevel=2)
                for name in ("DONE", "encoder.pt", "history.json"):
                    (run / name).unlink(missing_ok=True)
        if dd.any_true(rank == 0 and not (run / "DONE").exists()):  # process 0 decides for all
            _train(cfg, dataset, run, progress and rank == 0, torch.device(device))
        dd.barrier()
    model, history = loaded or _load_run(run, expected)
    return TrainResult(model=model, history=history, run_dir=run, config=cfg)


class _DamagedRunFile(ValueError):
    """A file of a finished run cannot be read (truncated, overwritten, another architecture)."""


def _load_run(run: Path, expected: EncoderConfig):
    """The finished run's encoder (in eval mode) and history; a damaged file raises
    :class:`_DamagedRunFile` naming it."""
    try:
        model = load_encoder(run / "encoder.pt", expected=expected)
    except (ValueError, OSError) as err:
        raise _DamagedRunFile(f"the run file {run / 'encoder.pt'} is damaged or missing ({err})") from err
    try:
        history = json.loads((run / "history.json").read_text())
        if not isinstance(history, dict) or "val_loss" not in history:
            raise ValueError("not a training history")
    except (ValueError, OSError) as err:
        raise _DamagedRunFile(f"the run file {run / 'history.json'} is damaged or missing ({err})") from err
    model.eval()
    return model, history


_WORKER_DATASET = None  # handed to forked workers by fit_many (inherited, not pickled)


def _fit_in_worker(cfg: TrainConfig, runs_dir) -> None:
    fit(cfg, _WORKER_DATASET, runs_dir, progress=False)


def _start_worker(parent: int) -> None:
    """One-thread worker that ends with its parent: a killed notebook kernel (or papermill run)
    must not leave training processes behind."""
    torch.set_num_threads(1)
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    import signal
    import threading

    try:  # Linux: the kernel sends SIGKILL when the parent dies
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) != 0:  # 1 = PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl failed")
    except (OSError, AttributeError):  # elsewhere: poll for a new parent
        def watch():
            while os.getppid() == parent:
                threading.Event().wait(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="otnsd-exit-with-parent").start()
    if os.getppid() != parent:  # the parent died before the request above
        os._exit(1)


def fit_many(configs, dataset, runs_dir=None, *, workers: int | None = None, progress: bool = True) -> dict:
    """Train every configuration not yet in the cache, ``workers`` at a time, then load them all.

    Small models train faster as parallel one-thread processes than one after another on all
    cores (on 2 cores: 36 ms per step each for two processes vs 26 ms for one two-thread process,
    1.4x the throughput). Workers are forked (Linux), so the dataset is shared, not copied; where
    fork is unavailable, or on a GPU, the runs train in this process, one after another.

    Parameters
    ----------
    configs : dict name -> TrainConfig (or a list)
    workers : int, default min(4, cpu count, runs to train)

    Returns
    -------
    dict name -> TrainResult, in the order of ``configs``
    """
    global _WORKER_DATASET
    named = dict(configs) if isinstance(configs, dict) else dict(enumerate(configs))
    todo = {}
    for cfg in named.values():
        if not is_cached(cfg, dataset, runs_dir):
            todo.setdefault(cfg.key(dataset), cfg)
    workers = max(1, min(workers or min(4, os.cpu_count() or 1), len(todo)))
    # Even one run trains in a one-thread worker, so a model's weights do not depend on which
    # notebook happened to train it. A GPU trains one run at a time here (CUDA does not survive fork).
    if todo and "fork" in multiprocessing.get_all_start_methods() and not torch.cuda.is_available():
        for s in sorted({s for cfg in todo.values() for s in cfg.subjects}):
            dataset.subject(s)  # build subject data once, before forking
        _WORKER_DATASET = dataset
        try:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(_fit_in_worker, cfg, runs_dir) for cfg in todo.values()]
                bar = tqdm(as_completed(futures), total=len(futures), desc=f"training {len(todo)} models ({workers} processes)",
                           disable=not progress)
                for f in bar:
                    f.result()
        finally:
            _WORKER_DATASET = None
    else:
        for cfg in tqdm(list(todo.values()), desc=f"training {len(todo)} models", disable=not progress or not todo):
            fit(cfg, dataset, runs_dir, progress=False)
    return {name: fit(cfg, dataset, runs_dir, progress=False) for name, cfg in named.items()}


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
    return total / count  # count >= 1: _SubjectSplit holds at least one validation row


class _Chunks(torch.nn.Module):
    """One forward over the (subject, voxels) chunks of a step: DDP wants one forward per backward."""

    def __init__(self, encoder: BrainEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, chunks):
        return torch.cat([self.encoder(v, s) for s, v in chunks])


def _train(cfg: TrainConfig, dataset, run: Path, progress: bool, device: torch.device) -> None:
    rank, world = dd.rank_and_world()
    if rank == 0:
        _atomic_write_text(
            json.dumps({"config": cfg.record(), "dataset": dataset.config(), "fingerprint": dataset.fingerprint}, indent=1, default=str),
            run / "config.json",
        )
    torch.manual_seed(cfg.seed)
    splits = [_SubjectSplit(dataset, s, cfg.val_images, cfg.regions) for s in cfg.subjects]
    model = build_encoder(cfg, dataset)
    for s in splits:
        model.set_voxel_stats(s.subject, s.mean, s.std)
    model.to(device)
    step_model = _Chunks(model)
    if world > 1:
        # cross-subject steps leave the other subjects' tokenizers unused
        step_model = torch.nn.parallel.DistributedDataParallel(
            step_model, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=len(cfg.subjects) > 1)
    loss_fn = get_loss(cfg.loss)
    mse_fn = get_loss("mse")
    steps = _steps_per_epoch(splits, cfg)
    if steps < 1:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the training set")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    history = {"epoch": [], "train_loss": [], "val_loss": [], "val_mse": []}
    start = 0
    ckpt = run / "checkpoint.pt"
    if ckpt.exists():
        try:
            state = torch.load(ckpt, map_location=device, weights_only=False)
            model.load_state_dict(state["model"], strict=True)
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            history, start = state["history"], state["epoch"]
        except Exception as err:  # truncated, garbage or foreign: any failure means start over
            warnings.warn(f"the checkpoint {ckpt} is damaged ({type(err).__name__}: {err}); discarding it and "
                          "training from the first epoch", UserWarning, stacklevel=3)
            ckpt.unlink(missing_ok=True)
            return _train(cfg, dataset, run, progress, device)
    model.train()
    bar = tqdm(range(start, cfg.epochs), desc=f"train {run.name}", disable=not progress, initial=start, total=cfg.epochs)
    for epoch in bar:
        # every process draws the same global batches and keeps its slice of each chunk
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 100003 + epoch)
        losses = []
        for chunks in _epoch_batches(splits, cfg, rng):
            local = [(s, v[dd.local_slice(len(v))].to(device), t[dd.local_slice(len(t))].to(device)) for s, v, t in chunks]
            preds = step_model([(s, v) for s, v, _ in local])
            loss, value = dd.step_loss(loss_fn, preds, torch.cat([t for _, _, t in local]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(value)
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(float(np.mean(losses)))
        history["val_loss"].append(_evaluate_loss(model, splits, loss_fn, cfg.batch_size, device))
        history["val_mse"].append(_evaluate_loss(model, splits, mse_fn, cfg.batch_size, device))
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.4g}", val=f"{history['val_loss'][-1]:.4g}")
        if rank == 0:
            _atomic_save(
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "history": history, "epoch": epoch + 1},
                ckpt,
            )
        dd.barrier()
        _maybe_die_for_tests(epoch + 1)
    if rank == 0:
        model.cpu()
        save_encoder(model, run / "encoder.pt")
        _atomic_write_text(json.dumps(history), run / "history.json")
        _atomic_write_text("done\n", run / "DONE")
        ckpt.unlink(missing_ok=True)


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


ANALYSIS_LOSSES = ("mse+ot", "ot", "mse")


def analysis_config(regions=None, *, loss: str = "mse+ot", lam: float = 0.5, level: str = "sample",
                    cost: str = "sqeuclidean", epochs: int = 10, seed: int = 0, batch_size: int = 64,
                    subject: int = 1, preset: str = "small") -> TrainConfig:
    """The single-subject model the analysis notebooks (04-07) train on a region subset.

    ``loss`` is ``"mse+ot"`` (MSE plus the partial-OT term at ``lam``: the variant that learns on
    the simulator), ``"ot"`` (the paper's loss alone) or ``"mse"``. Every analysis notebook builds
    its models through this function with the same defaults, so they share one cache.
    """
    if loss not in ANALYSIS_LOSSES:
        raise ValueError(f"unknown analysis loss {loss!r}; choose one of {', '.join(ANALYSIS_LOSSES)}")
    ot = {"ot": {"lam": float(lam), "level": level, "cost": cost}}
    spec = {"mse+ot": {"mse": {}, **ot}, "ot": ot, "mse": {"mse": {}}}[loss]
    return TrainConfig(subjects=(subject,), loss=spec, epochs=epochs, seed=seed, batch_size=batch_size, preset=preset,
                       regions=None if regions is None else tuple(regions))


def paper_models(*, lam: float = 0.5, level: str = "sample", cost: str = "sqeuclidean", epochs: int = 20,
                 cross_epochs: int = 5, seed: int = 0, batch_size: int = 64, subject: int = 1,
                 cross_subjects: tuple[int, ...] = (1, 2, 5, 7), preset: str = "small") -> dict[str, TrainConfig]:
    """The models the paper compares (Table 1), plus the OT variants worth showing beside them.

    ``OT-S1`` uses the paper's equations at ``level``/``cost``; ``OT-S1 (released code)`` the
    token-level Euclidean loss of the released code; ``MSE+OT-S1`` adds the OT term to MSE.
    Single-subject models train on ``subject``, cross-subject ones on ``cross_subjects``; with four
    subjects' data per epoch, ``cross_epochs`` defaults to a quarter of ``epochs`` (about the same
    number of steps). Evaluation in the notebooks is on ``subject``'s test images.
    """
    ot = {"lam": lam, "level": level, "cost": cost}
    common = dict(batch_size=batch_size, seed=seed, preset=preset)
    single = dict(subjects=(subject,), epochs=epochs, **common)
    cross = dict(subjects=tuple(cross_subjects), epochs=cross_epochs, **common)
    return {
        "MSE-S1": TrainConfig(loss={"mse": {}}, **single),
        "OT-S1": TrainConfig(loss={"ot": ot}, **single),
        "OT-S1 (released code)": TrainConfig(loss={"ot": {"lam": lam, "level": "token", "cost": "euclidean"}}, **single),
        "MSE+OT-S1": TrainConfig(loss={"mse": {}, "ot": ot}, **single),
        "InfoNCE-S1": TrainConfig(loss={"infonce": {}}, **single),
        "MSE-cross": TrainConfig(loss={"mse": {}}, **cross),
        "OT-cross": TrainConfig(loss={"ot": ot}, **cross),
    }


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
