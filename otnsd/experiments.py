"""The experiments the notebooks run: their shared parameters, their models, their result tables.

A notebook is parameters -> a few calls -> plots -> printed numbers::

    from otnsd.experiments import setup
    ex = setup(globals(), captions=True)          # dataset, captioner, CLIP-S encoder, folders
    configs = ex.paper_models(epochs=epochs, cross_epochs=cross_epochs, cross_subjects=cross_subjects)
    models = ex.train(configs)                    # trained once, then read from the run cache
    results, captions = ex.evaluate(ex.predict(models), n_boot=n_boot)

Parameters shared by several notebooks are defined once, in :data:`PARAMETERS`: papermill and
JupyterLab need every parameter written in the notebook's ``parameters`` cell, so the notebooks
repeat the names, and a test checks that each copy keeps the default defined here.
:func:`setup` reads them from the notebook's namespace and turns them into objects.

Named configurations: :func:`paper_models` (Table 1), :func:`analysis_config` (the single-subject
models of notebooks 04-07), :func:`lambda_grid` (notebook 04), :func:`region_sets` (Table 2 and
the region pairs of notebook 05).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

from .data import REGIONS, open_dataset
from .notebook import as_list
from .paper import TABLE2_REGION_SETS
from .plots import savefig, use_style, write_table
from .train import TrainConfig, fit_many


@dataclass(frozen=True)
class Parameter:
    default: object
    doc: str


# name -> default and meaning, for every parameter that more than one notebook takes
PARAMETERS = {
    "dataset": Parameter("simulated", '"simulated", or "nsd" for a local NSD copy (then set data_root and clip_features)'),
    "data_root": Parameter(None, "NSD folder (None: OTNSD_DATA)"),
    "clip_features": Parameter(None, "CLIP ViT-L/14 features of the NSD images (HDF5 from otnsd.features.extract_features)"),
    "seed": Parameter(0, "seed of the simulated NSD and of every training run"),
    "preset": Parameter("small", 'encoder size: "small" (CPU) or "paper" (UMBRAE\'s, with real CLIP features)'),
    "subject": Parameter(1, "single-subject models train and every model is evaluated on this subject"),
    "lam": Parameter(0.5, "OT mass ratio λ (the released code's default m_ratio)"),
    "loss": Parameter("mse+ot", '"mse+ot", "ot" or "mse" (see notebook 04)'),
    "ot_level": Parameter("sample", '"sample" (paper\'s equations) or "token" (released code)'),
    "ot_cost": Parameter("sqeuclidean", '"sqeuclidean" (paper) or "euclidean" (released code)'),
    "batch_size": Parameter(64, "training batch size"),
    "captioner": Parameter("prefix", '"prefix" (small trained decoder), "retrieval" (nearest training image), "retrieval_pooled" or "shikra"'),
    "shikra_dir": Parameter(None, 'local Shikra-7B folder, for captioner="shikra"'),
    "clip_score_weights": Parameter(None, "local CLIP ViT-B/32 weights for CLIP-S / RefCLIP-S on real NSD (the simulator has its own)"),
    "workers": Parameter(None, "parallel training processes (None: up to 4, one per core)"),
    "progress": Parameter(True, "progress bars"),
    "runs_dir": Parameter(None, "trained-model cache (None: OTNSD_RUNS, else the checkout's runs/)"),
    "fig_dir": Parameter(None, "figures and tables (None: OTNSD_FIGURES, else the checkout's figures/)"),
}

ANALYSIS_LOSSES = ("mse+ot", "ot", "mse")


# ------------------------------------------------------------------------------ configurations
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


def lambda_grid(lams, lam: float, *, loss: str = "mse+ot", region_sets: dict, compare_pure_ot: bool = True,
                **common) -> dict[tuple, TrainConfig]:
    """Notebook 04's models: ``loss`` at every λ of ``lams`` (and ``lam``) for every region set,
    the paper's OT alone on all regions at every λ (``compare_pure_ot``), and MSE as a λ-free
    reference. Keys are ``(loss, region set name, λ)``, λ None for MSE."""
    grid = sorted(set(as_list(lams, float, name="lams")) | {float(lam)})
    configs = {(loss, name, l): analysis_config(rs, loss=loss, lam=l, **common) for name, rs in region_sets.items() for l in grid}
    if compare_pure_ot and loss != "ot":
        configs.update({("ot", "All", l): analysis_config(None, loss="ot", lam=l, **common) for l in grid})
    configs[("mse", "All", None)] = analysis_config(None, loss="mse", **common)
    return configs


def region_sets(singles=(), pairs_of=()) -> dict[str, tuple[str, ...] | None]:
    """Table 2's region sets, plus every region of ``singles`` alone and every pair of
    ``pairs_of`` (and its singles), named by their regions joined with "+"."""
    from .analysis import region_subsets

    sets = dict(TABLE2_REGION_SETS)
    sets.update({"+".join(s): s for s in region_subsets(as_list(pairs_of, str), sizes=(1, 2))})
    sets.update({r: (r,) for r in as_list(singles, str)})
    return sets


def planted_factor_pairs(truth) -> dict[str, tuple[str, tuple[str, str]]]:
    """The simulator's planted region pairs by factor code (as ``factor_codes`` names them):
    factor -> ("synergy" or "redundancy", (region a, region b))."""
    code = {"people presence": "people"}  # ground-truth names -> simulator factor codes
    planted = {code.get(f, f): ("synergy", tuple(pair)) for f, pair in truth.synergistic.items()}
    planted.update({code.get(f, f): ("redundancy", tuple(pair)) for f, pair in truth.redundant.items()})
    return planted


def is_pure_ot(cfg: TrainConfig) -> bool:
    """True for a model trained on the partial-OT loss alone: its training is chaotic (tiny float
    changes move it), so the notebooks' regression compares it with looser tolerances."""
    return {term.name for term in cfg.loss} == {"ot"}


def loss_text(cfg: TrainConfig) -> str:
    """A configuration's loss in one line, e.g. ``mse + ot(cost=sqeuclidean, lam=0.5, level=sample)``."""
    def term(t):
        args = ", ".join(f"{k}={v}" for k, v in sorted(t.kwargs.items()))
        return ("" if t.weight == 1 else f"{t.weight:g} * ") + t.name + (f"({args})" if args else "")

    return " + ".join(term(t) for t in cfg.loss)


# ------------------------------------------------------------------------------ results
def ci_text(result: dict, metric: str = "CIDEr") -> str:
    """``"[low, high]"``: a metric's 95% CI, one decimal."""
    _, lo, hi = result[metric]
    return f"[{lo:.1f}, {hi:.1f}]"


def value_ci_text(result: dict, metric: str = "CIDEr") -> str:
    """``"value [low, high]"``, one decimal."""
    return f"{result[metric][0]:.1f} {ci_text(result, metric)}"


def region_marks(regions) -> dict[str, str]:
    """Table 2's region columns: "●" for each region in the set (None: all), "○" otherwise."""
    chosen = REGIONS if regions is None else regions
    short = {"Vision": "V", "Place": "P", "Face": "F", "Word": "W", "Body": "B", "Other": "Other"}
    return {c: "●" if r in chosen else "○" for r, c in short.items()}


# ------------------------------------------------------------------------------ set-up
@dataclass
class Experiment:
    """A notebook's dataset, evaluation subject, folders and (lazily) captioner and CLIP-S encoder.

    Built by :func:`setup`; ``params`` holds the shared parameters (:data:`PARAMETERS`) as the
    notebook set them.
    """

    data: object
    params: dict = field(default_factory=dict)

    def __getattr__(self, name):
        # the shared parameters read as attributes: ex.subject, ex.lam, ex.runs_dir ...
        params = self.__dict__.get("params", {})
        if name in PARAMETERS:
            return params.get(name, PARAMETERS[name].default)
        raise AttributeError(name)

    @property
    def ids(self):
        """The evaluation subject's test image ids."""
        return self.data.subject(self.subject).test_image_ids

    @cached_property
    def references(self) -> list[list[str]]:
        return self.data.captions(self.ids)

    @cached_property
    def caption(self):
        """The captioner of the ``captioner`` parameter (trained or loaded on first use)."""
        from .caption import make_captioner

        return make_captioner(self.captioner, self.data, self.subject, runs_dir=self.runs_dir, progress=self.progress,
                              shikra_dir=self.shikra_dir)

    @cached_property
    def clip_encoder(self):
        """Real CLIP ViT-B/32 for CLIP-S when ``clip_score_weights`` is given (else None: the
        simulator scores with its own stand-in, real NSD reports no CLIP-S)."""
        from .metrics import OpenCLIPEncoder

        w = self.clip_score_weights
        return OpenCLIPEncoder.from_local("ViT-B-32", w, images=self.data.images) if w else None

    # configurations with the notebook's shared parameters filled in
    def model_params(self) -> dict:
        return dict(lam=self.lam, level=self.ot_level, cost=self.ot_cost, seed=self.seed, batch_size=self.batch_size,
                    subject=self.subject, preset=self.preset)

    def paper_models(self, **kwargs) -> dict[str, TrainConfig]:
        if "cross_subjects" in kwargs:
            kwargs["cross_subjects"] = tuple(as_list(kwargs["cross_subjects"], int, name="cross_subjects"))
        return paper_models(**{**self.model_params(), **kwargs})

    def analysis_config(self, regions=None, **kwargs) -> TrainConfig:
        return analysis_config(regions, **{**self.model_params(), "loss": self.loss, **kwargs})

    def lambda_grid(self, lams, region_sets: dict, *, compare_pure_ot: bool = True, epochs: int = 10) -> dict:
        common = {k: v for k, v in self.model_params().items() if k != "lam"}
        return lambda_grid(lams, self.lam, loss=self.loss, region_sets=region_sets, compare_pure_ot=compare_pure_ot,
                           epochs=epochs, **common)

    # train, predict, evaluate
    def train(self, configs: dict) -> dict:
        """Train every configuration not in the run cache (in parallel), load them all: name -> TrainResult."""
        return fit_many(configs, self.data, self.runs_dir, workers=self.workers, progress=self.progress)

    def predict(self, models: dict) -> dict:
        """Each model's embeddings of the evaluation subject's test images: name -> (n, T, D)."""
        return {name: r.predict_test(self.data, self.subject) for name, r in models.items()}

    def evaluate(self, embeddings: dict, *, n_boot: int = 1000) -> tuple[dict, dict]:
        """Caption every set of test embeddings and score it (Table 1's metrics, retrieval):
        ``(name -> {metric: (value, low, high)}, name -> captions)``."""
        from .metrics import evaluate_embeddings

        results, captions = {}, {}
        for name, emb in embeddings.items():
            results[name], captions[name] = evaluate_embeddings(
                self.data, self.ids, emb, self.caption, references=self.references, clip_encoder=self.clip_encoder,
                n_boot=n_boot, seed=self.seed)
        return results, captions

    def floors(self, result=None, *, seed: int = 0) -> dict:
        """Embeddings that carry no information about the test image, for floor rows: the mean
        training embedding for every image, and (given a trained model's ``TrainResult``) its
        output on test voxels shuffled across images (what it says about another image)."""
        import numpy as np

        train_ids = self.data.subject(self.subject).train_image_ids
        mean = self.data.image_embeddings(train_ids).mean(0)
        out = {"Floor (mean training embedding)": np.repeat(mean[None], len(self.ids), axis=0)}
        if result is not None:
            voxels = self.data.subject(self.subject).test_voxels
            shuffled = voxels[np.random.default_rng(seed).permutation(len(voxels))]
            out["Floor (shuffled voxels)"] = self._predict(result, shuffled)
        return out

    def _predict(self, result, voxels):
        from .train import predict, voxel_mask

        return predict(result.model, voxels[:, voxel_mask(self.data, self.subject, result.config.regions)], self.subject)

    def scorer(self, model, metric: str):
        """``score(voxels) -> float`` of ``model`` on the evaluation subject's test images: a caption
        metric of :data:`~otnsd.metrics.CAPTION_METRICS` (corpus level, no SPICE) or a retrieval
        metric of :func:`~otnsd.metrics.retrieval_scores` (e.g. ``top1_brain2image``)."""
        from .metrics import CAPTION_METRICS, caption_scores, retrieval_scores
        from .train import predict

        target = self.data.image_embeddings(self.ids)

        def score(voxels) -> float:
            emb = predict(model, voxels, self.subject)
            if metric in CAPTION_METRICS:
                return caption_scores(self.caption(emb), self.references, spice=False)["corpus"][metric]
            return float(retrieval_scores(emb, target)[metric].mean())

        return score

    # outputs
    def savefig(self, fig, name: str):
        return savefig(fig, name, self.fig_dir)

    def write_table(self, rows, columns, name: str, *, caption: str = ""):
        return write_table(rows, columns, name, self.fig_dir, caption=caption)


def setup(params: Mapping, *, captions: bool = False, subjects=None) -> Experiment:
    """A notebook's :class:`Experiment` from its parameters (pass ``globals()``).

    Reads the shared parameters (:data:`PARAMETERS`; absent ones take their default), opens the
    dataset, applies the figure style. ``captions=True`` checks now that the caption metrics can
    run (Java), instead of after training. ``subjects``: the subjects to load (real NSD; default
    the paper's four).
    """
    shared = {name: params[name] for name in PARAMETERS if name in params}
    ex = Experiment(data=None, params=shared)
    if captions:
        from .metrics import require_java

        require_java()
        warnings.filterwarnings("ignore", message="SPICE is reported")  # stated once by the notebook instead
    if subjects is not None:
        subjects = sorted({ex.subject, *as_list(subjects, int, name="subjects")})
    ex.data = open_dataset(ex.dataset, seed=ex.seed, root=ex.data_root, features=ex.clip_features, subjects=subjects)
    use_style()
    return ex
