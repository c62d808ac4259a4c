"""The run cache: one folder per trained configuration, written so that no crash or race damages it.

A run lives in ``<runs>/train/<key>/``, ``key`` hashing the configuration and the dataset's
fingerprint (``TrainConfig.key``): asking twice for the same model trains once. A file lock
serialises two processes asking for the same run; every file is written atomically; a checkpoint
after every epoch lets an interrupted run (even by ``kill -9``) resume; a run counts as finished
only once its ``DONE`` marker exists, and a finished run whose files cannot be read is discarded
and trained again. :func:`train_missing` trains the runs a list of configurations lacks in
forked one-thread workers that end with their parent.

This module knows configurations only through ``key``, ``subjects`` and the training function it
is handed, so that :mod:`otnsd.train` can import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import torch
from tqdm.std import tqdm  # plain text bars: no widget dependency, same in notebooks and shells

from . import distributed as dd
from .model import EncoderConfig, load_encoder, save_encoder
from .paths import atomic_path
from .paths import runs_dir as _runs_dir

DONE = "DONE"
ENCODER = "encoder.pt"
HISTORY = "history.json"
CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"


# ------------------------------------------------------------------------------------ files
def atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block."""
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _warn(message: str) -> None:
    """A UserWarning attributed to the first caller outside otnsd (the notebook or script)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("otnsd."):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


# ------------------------------------------------------------------------------------ runs
def run_dir_for(cfg, dataset, runs_dir=None) -> Path:
    """The folder of ``cfg``'s run on ``dataset`` (a ``TrainConfig``; nothing is created)."""
    return _runs_dir(runs_dir) / "train" / cfg.key(dataset)


def is_cached(cfg, dataset, runs_dir=None) -> bool:
    """Whether ``cfg``'s run on ``dataset`` has finished."""
    return (run_dir_for(cfg, dataset, runs_dir) / DONE).exists()


class DamagedRunFile(ValueError):
    """A file of a run cannot be read (truncated, overwritten, another architecture)."""


def load_run(run: Path, expected: EncoderConfig):
    """The finished run's encoder (in eval mode) and history; a damaged file raises
    :class:`DamagedRunFile` naming it."""
    try:
        model = load_encoder(run / ENCODER, expected=expected)
    except (ValueError, OSError) as err:
        raise DamagedRunFile(f"the run file {run / ENCODER} is damaged or missing ({err})") from err
    try:
        history = json.loads((run / HISTORY).read_text())
        if not isinstance(history, dict) or "val_loss" not in history:
            raise ValueError("not a training history")
    except (ValueError, OSError) as err:
        raise DamagedRunFile(f"the run file {run / HISTORY} is damaged or missing ({err})") from err
    model.eval()
    return model, history


def load_or_train(run: Path, expected: EncoderConfig, train: Callable[[], None]):
    """The encoder and history of the finished run in ``run``; ``train()`` writes them first when
    the run is missing, unfinished or damaged.

    Inside a ``torch.distributed`` process group, process 0 holds the lock and decides for all;
    every process then calls ``train()``, so the folder must be on a filesystem all of them share.
    """
    rank, _ = dd.rank_and_world()
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
    loaded = None
    with locked(run.parent / f"{run.name}.lock") if rank == 0 else contextlib.nullcontext():
        if rank == 0 and (run / DONE).exists():
            try:
                loaded = load_run(run, expected)
            except DamagedRunFile as err:
                _warn(f"{err}; discarding the run and training it again")
                for name in (DONE, ENCODER, HISTORY):
                    (run / name).unlink(missing_ok=True)
        if dd.any_true(rank == 0 and not (run / DONE).exists()):  # process 0 decides for all
            train()
        dd.barrier()
    return loaded or load_run(run, expected)


def write_config(run: Path, config: dict, dataset) -> None:
    """Record what the run trains (readable; the key is what identifies it)."""
    blob = {"config": config, "dataset": dataset.config(), "fingerprint": dataset.fingerprint}
    atomic_write_text(json.dumps(blob, indent=1, default=str), run / CONFIG)


def save_checkpoint(run: Path, model, optimizer, scheduler, history: dict, epoch: int) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "history": history, "epoch": epoch}
    atomic_save(state, run / CHECKPOINT)


def resume(run: Path, device, model, optimizer, scheduler):
    """Restore ``model``, ``optimizer`` and ``scheduler`` from the run's checkpoint and return
    ``(history, epochs done)``; None without a checkpoint. A damaged one is deleted with a warning
    and raises :class:`DamagedRunFile`: the objects may be half-restored, so start afresh."""
    ckpt = run / CHECKPOINT
    if not ckpt.exists():
        return None
    try:
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        return state["history"], state["epoch"]
    except Exception as err:  # truncated, garbage or foreign: any failure means start over
        _warn(f"the checkpoint {ckpt} is damaged ({type(err).__name__}: {err}); discarding it and "
              "training from the first epoch")
        ckpt.unlink(missing_ok=True)
        raise DamagedRunFile(f"the checkpoint {ckpt} is damaged") from err


def finish(run: Path, model, history: dict) -> None:
    """Write the trained encoder and its history, then mark the run finished."""
    save_encoder(model, run / ENCODER)
    atomic_write_text(json.dumps(history), run / HISTORY)
    atomic_write_text("done\n", run / DONE)  # last: a run without it is unfinished
    (run / CHECKPOINT).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ workers
_WORKER_DATASET = None  # handed to forked workers by train_missing (inherited, not pickled)


def _train_in_worker(train_unit: Callable, unit: list) -> None:
    train_unit(unit, _WORKER_DATASET)


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


def train_missing(configs, dataset, runs_dir, train_unit: Callable, *, workers: int | None = None,
                  progress: bool = True, partition: Callable | None = None) -> None:
    """Train each configuration whose run is not finished (once per key), ``workers`` at a time.

    ``partition(configs, workers)`` splits the configurations to train into units (lists; default
    one configuration each) and ``train_unit(unit, dataset)`` trains one unit. A configuration whose
    warm start is not trained yet waits for a later wave, so a unit never waits for another.

    Workers are forked one-thread processes (Linux), so the dataset is shared, not copied; where
    fork is unavailable, or on a GPU (CUDA does not survive fork), the units train in this process,
    one after another. ``train_unit`` must be picklable (a module-level function or a partial).
    """
    todo = {}
    for cfg in configs:
        if not is_cached(cfg, dataset, runs_dir):
            todo.setdefault(cfg.key(dataset), cfg)
    partition = partition or (lambda cfgs, _: [[c] for c in cfgs])
    waves, keys = [], set(todo)
    while keys:  # a wave: the configurations whose warm start is trained or not among these
        wave = [k for k in todo if k in keys and (getattr(todo[k], "warm_start", None) is None
                                                  or todo[k].warm_start.key(dataset) not in keys)]
        waves.append([todo[k] for k in wave])
        keys -= set(wave)
    workers = max(1, min(workers or min(4, os.cpu_count() or 1), len(todo) or 1))
    _train_units([partition(wave, workers) for wave in waves], dataset, train_unit, workers, progress, total=len(todo))


def _train_units(waves: list[list[list]], dataset, train_unit, workers: int, progress: bool, total: int) -> None:
    global _WORKER_DATASET
    bar = tqdm(total=total, desc=f"training {total} models ({workers} processes)", disable=not progress or not total)
    # Even one run trains in a one-thread worker, so a model's weights do not depend on which
    # notebook happened to train it.
    if total and "fork" in multiprocessing.get_all_start_methods() and not torch.cuda.is_available():
        for s in sorted({s for wave in waves for unit in wave for cfg in unit for s in cfg.subjects}):
            dataset.subject(s)  # build subject data once, before forking
        _WORKER_DATASET = dataset
        try:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(os.getpid(),)) as pool:
                for wave in waves:
                    futures = {pool.submit(_train_in_worker, train_unit, unit): len(unit) for unit in wave}
                    for f in as_completed(futures):
                        f.result()
                        bar.update(futures[f])
        finally:
            _WORKER_DATASET = None
    else:
        for wave in waves:
            for unit in wave:
                train_unit(unit, dataset)
                bar.update(len(unit))
    bar.close()
