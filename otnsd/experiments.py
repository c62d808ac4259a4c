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

import dataclasses
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import numpy as np

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
    "difficulty": Parameter("nsd", '"nsd" (noise calibrated to the paper\'s MSE/ceiling CIDEr on real NSD) or "easy" (the simulator\'s defaults); simulator only, real NSD is "nsd" by definition'),
    "control": Parameter("none", '"none", or a control simulator: "null" (no synergy, no redundancy, regions about equally important) or "permuted" (codes moved between regions); simulator only'),
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


def with_seeds(configs: dict, seeds) -> dict[tuple, TrainConfig]:
    """Every configuration at every training seed: ``(key, seed) -> TrainConfig`` (the dataset,
    and so its seed, is unchanged; only the initialisation and batch order change)."""
    seeds = as_list(seeds, int, name="seeds")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"give one or more distinct training seeds, e.g. [0, 1, 2]; got {seeds}")
    return {(key, s): dataclasses.replace(cfg, seed=s) for key, cfg in configs.items() for s in seeds}


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


def corruption_settings(difficulties, lapse_rates=(), mislabel_rates=(), *, lapse_kind: str = "noise") -> dict[str, dict]:
    """Notebook 08's training data: setting name -> simulator options (``open_dataset``). Every
    difficulty clean, then the first difficulty with each lapse rate and each mislabel rate (the
    test trials stay clean in every setting)."""
    difficulties = as_list(difficulties, str, name="difficulties")
    if not difficulties:
        raise ValueError("give at least one difficulty, e.g. ['nsd', 'easy']")
    first = difficulties[0]
    settings = {f"{d}, clean": {"difficulty": d} for d in difficulties}
    settings.update({f"{first}, lapsed {r:g}": {"difficulty": first, "lapse_rate": r, "lapse_kind": lapse_kind}
                     for r in as_list(lapse_rates, float, name="lapse_rates")})
    settings.update({f"{first}, mislabelled {r:g}": {"difficulty": first, "mislabel_rate": r}
                     for r in as_list(mislabel_rates, float, name="mislabel_rates")})
    return settings


def setting_rate(options: dict) -> tuple[str, float]:
    """A setting's corruption and its rate: ("lapsed", 0.25), ("mislabelled", 0.5) or ("clean", 0.0)."""
    if options.get("lapse_rate", 0) > 0:
        return "lapsed", float(options["lapse_rate"])
    if options.get("mislabel_rate", 0) > 0:
        return "mislabelled", float(options["mislabel_rate"])
    return "clean", 0.0


def robustness_losses(lam: float, token_lams=()) -> dict[str, dict]:
    """Notebook 08's losses: name -> loss spec. MSE; the robust per-sample baselines (trimmed MSE
    keeping the share ``lam`` of the batch, Huber); the paper's sample-level partial OT at ``lam``
    and at 1 (full OT); MSE plus OT; and, for each of ``token_lams``, the released code's
    token-level OT with the Euclidean and with the squared cost."""
    losses = {
        "MSE": {"mse": {}},
        f"trimmed MSE {lam:g}": {"trimmed_mse": {"lam": lam}},
        "Huber": {"huber": {}},
        f"OT {lam:g}": {"ot": {"lam": lam}},
        "OT 1": {"ot": {"lam": 1.0}},
        f"MSE+OT {lam:g}": {"mse": {}, "ot": {"lam": lam}},
    }
    for l in as_list(token_lams, float, name="token_lams"):
        for cost, short in (("euclidean", "eucl"), ("sqeuclidean", "sq")):
            losses[f"token OT {short} {l:g}"] = {"ot": {"lam": l, "level": "token", "cost": cost}}
    return losses


def robustness_grid(losses: dict, seeds, *, epochs: int, warm_epochs: int = 0, warm_lam: float = 0.5,
                    keep_true_pairs: bool = False, **common) -> dict[tuple[str, int], TrainConfig]:
    """Every loss of ``losses`` at every training seed: ``(loss name, seed) -> TrainConfig``.
    ``warm_epochs > 0`` adds "MSE -> OT": the MSE model of the same seed trained ``warm_epochs``
    more with partial OT at ``warm_lam``. ``common``: the other TrainConfig fields."""
    seeds = as_list(seeds, int, name="seeds")
    grid = {(name, s): TrainConfig(loss=spec, epochs=epochs, seed=s, keep_true_pairs=keep_true_pairs, **common)
            for name, spec in losses.items() for s in seeds}
    if warm_epochs > 0:
        if "MSE" not in losses:
            raise ValueError("the warm start begins from the MSE model: keep 'MSE' among the losses")
        grid.update({(f"MSE -> OT {warm_lam:g}", s): TrainConfig(
            loss={"ot": {"lam": warm_lam}}, epochs=warm_epochs, seed=s, keep_true_pairs=keep_true_pairs,
            warm_start=grid[("MSE", s)], **common) for s in seeds})
    return grid


# losses with a per-sample regression term: their training is not chaotic (measured for MSE and
# MSE+OT by benchmarks/training_variation.py; trimmed MSE and Huber regress sample by sample too)
_REGRESSION_LOSSES = frozenset({"mse", "trimmed_mse", "huber"})


def trains_chaotically(cfg: TrainConfig) -> bool:
    """True for a model trained without a per-sample regression term (partial OT alone, InfoNCE):
    last-digit float changes (another CPU) grow during its training to differences of the size of
    another training seed (``benchmarks/training_variation.py``), so the notebooks' regression
    compares its records with tolerances of their own (kinds ending in ``_chaotic``)."""
    return not any(term.name in _REGRESSION_LOSSES for term in cfg.loss)


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


def robustness_rows(scores: dict, *, baseline: str = "MSE", n_boot: int = 1000) -> list[dict]:
    """Notebook 08's verdict table: one row per (setting, family) and metric.

    ``scores``: metric -> {(setting, family, seed): per-image scores}. Each family is compared with
    ``baseline`` of its setting by :func:`~otnsd.analysis.compare_seeds` (paired by seed and test
    image; the verdict rule needs three seeds). Rows hold the setting, family, metric, seed mean and
    sd, the paired difference to the baseline with its 95% CI, the verdict and the seeds."""
    from .analysis import compare_seeds

    rows = []
    for metric, by_key in scores.items():
        for setting in dict.fromkeys(k[0] for k in by_key):
            summary = compare_seeds({(f, s): v for (g, f, s), v in by_key.items() if g == setting}, baseline, n_boot=n_boot)
            for family, r in summary.items():
                d = r.get("difference")
                rows.append({"Setting": setting, "Loss": family, "Metric": metric, "Mean": r["mean"], "SD": r["sd"],
                             f"Diff. vs {baseline}": None if d is None else d["mean"],
                             "95% CI": "" if d is None else f"[{d['low']:+.1f}, {d['high']:+.1f}]",
                             "Verdict": r.get("verdict", "(baseline)"), "Seeds": ",".join(map(str, r["seeds"]))})
    return rows


def verdict_line(row: dict, *, baseline: str = "MSE") -> str:
    """One row of :func:`robustness_rows` as a printed line: setting, metric, loss, mean ± sd, and
    the difference to the baseline with its CI and verdict."""
    d = row[f"Diff. vs {baseline}"]
    diff = "" if d is None else f"{d:+6.1f} {row['95% CI']:16s} {row['Verdict']}"
    return f"{row['Setting']:22s} {row['Metric']:17s} {row['Loss']:24s} {row['Mean']:6.1f} ± {row['SD']:4.1f}  {diff}"


def rate_curves_data(rows: list[dict], settings: dict, metric: str, corruption: str, families) -> dict:
    """From :func:`robustness_rows`: family -> [(rate, mean, sd)] of ``metric`` over the settings
    of one ``corruption`` ("lapsed" or "mislabelled") and the clean setting of their difficulty."""
    difficulty = next((o["difficulty"] for o in settings.values() if setting_rate(o)[0] == corruption), None)
    if difficulty is None:
        return {}
    chosen = {name: setting_rate(o)[1] for name, o in settings.items()
              if o["difficulty"] == difficulty and setting_rate(o)[0] in ("clean", corruption)}
    return {f: [(chosen[r["Setting"]], r["Mean"], r["SD"]) for r in rows
                if r["Setting"] in chosen and r["Loss"] == f and r["Metric"] == metric] for f in families}


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

    def with_data(self, **options) -> "Experiment":
        """The same experiment on another simulated dataset: the notebook's dataset and seed with
        ``options`` (e.g. ``difficulty="nsd", lapse_rate=0.25``; see :func:`corruption_settings`)."""
        return Experiment(data=_open(self, **options), params=self.params)

    # configurations with the notebook's shared parameters filled in
    def model_params(self) -> dict:
        return dict(lam=self.lam, level=self.ot_level, cost=self.ot_cost, seed=self.seed, batch_size=self.batch_size,
                    subject=self.subject, preset=self.preset)

    def training_seeds(self, seeds=None) -> list[int]:
        """A notebook's ``seeds`` parameter as a list: None means the one seed ``seed``."""
        return [self.seed] if seeds is None else as_list(seeds, int, name="seeds")

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

    def retrieval(self, embeddings: dict) -> dict:
        """Per-image top-1 brain-to-image retrieval (x 100) among the test images, of each set of
        test embeddings: name -> ``{"top1": (n,), "top1_pooled": (n,)}``; pooled over tokens is
        blind to token order (token-level OT)."""
        from .metrics import retrieval_scores

        target = self.data.image_embeddings(self.ids)
        return {name: {"top1": retrieval_scores(e, target)["top1_brain2image"],
                       "top1_pooled": retrieval_scores(e, target, pooled=True)["top1_brain2image"]}
                for name, e in embeddings.items()}

    def cider(self, embeddings: dict, *, captioner: str | None = None) -> dict:
        """Per-image CIDEr (x 100) of each set of test embeddings, captioned by ``captioner`` (a
        kind of :func:`~otnsd.caption.make_captioner`; default the notebook's), scored in one pass:
        name -> (n,)."""
        from .caption import make_captioner
        from .metrics import cider_per_image

        caption = self.caption if captioner in (None, self.captioner) else make_captioner(
            captioner, self.data, self.subject, runs_dir=self.runs_dir, progress=self.progress)
        first = {}  # an array given under several names is captioned and scored once
        for name, e in embeddings.items():
            first.setdefault(id(e), name)
        scores = cider_per_image({name: caption(embeddings[name]) for name in first.values()}, self.references)
        return {name: scores[first[id(e)]] for name, e in embeddings.items()}

    def per_image_scores(self, embeddings: dict, *, order_blind: bool = False) -> dict:
        """Notebook 08's metrics of each set of test embeddings: metric -> name -> per-image scores
        (n,). CIDEr (the notebook's captioner), top-1 and top-1 on token-pooled embeddings (x 100,
        see :meth:`retrieval`); ``order_blind`` adds "CIDEr order-blind", captioned by
        ``retrieval_pooled`` (blind to token order)."""
        retrieval = self.retrieval(embeddings)
        scores = {"CIDEr": self.cider(embeddings), "top-1": {k: r["top1"] for k, r in retrieval.items()},
                  "top-1 pooled": {k: r["top1_pooled"] for k, r in retrieval.items()}}
        if order_blind:
            scores["CIDEr order-blind"] = self.cider(embeddings, captioner="retrieval_pooled")
        return scores

    def floors(self, result=None, *, seed: int = 0) -> dict:
        """Embeddings that carry no information about the test image, for floor rows: the mean
        training embedding for every image, and (given a trained model's ``TrainResult``) its
        output on test voxels shuffled across images (what it says about another image)."""
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

    def metric_per_image(self, embeddings: dict, metric: str) -> dict:
        """Per-image scores of each set of test embeddings, whose mean is the metric: ``CIDEr``
        (x 100, the notebook's captioner) or a retrieval metric of
        :func:`~otnsd.metrics.retrieval_scores` (e.g. ``top1_brain2image``): name -> (n,)."""
        from .metrics import retrieval_scores

        _check_per_image_metric(metric)
        if metric == "CIDEr":
            return self.cider(embeddings)
        target = self.data.image_embeddings(self.ids)
        return {name: np.asarray(retrieval_scores(e, target)[metric], dtype=float) for name, e in embeddings.items()}

    def corpus_scores(self, embeddings: dict, metric: str) -> dict:
        """One corpus score of ``metric`` per set of test embeddings (name -> float), cheaper than
        :meth:`evaluate` (no other metric, no bootstrap): CIDEr and retrieval metrics as the mean
        of :meth:`metric_per_image` (what the corpus CIDEr is), other caption metrics from
        :func:`~otnsd.metrics.caption_scores` (no SPICE)."""
        from .metrics import caption_scores

        if not _is_per_image_metric(metric):
            return {name: caption_scores(self.caption(e), self.references, spice=False)["corpus"][metric]
                    for name, e in embeddings.items()}
        return {name: float(v.mean()) for name, v in self.metric_per_image(embeddings, metric).items()}

    def importance_cis(self, perturbed_by_seed: dict, metric: str, *, removed_by_seed: dict | None = None,
                       mode: str = "permute", n_boot: int = 1000) -> dict:
        """Notebook 06's importance with 95% CIs over training seeds and test images
        (:func:`~otnsd.analysis.importance_ci`).

        ``perturbed_by_seed``: training seed -> :func:`~otnsd.analysis.perturbation_importance` of
        the all-region model, scored per image; ``removed_by_seed`` (optional): ``(name, seed) ->
        TrainResult`` with ``"All"`` and ``"without <region>"`` models (leave one region out).
        Returns measure name (``"<metric> drop (<mode>)"``, ``"<metric> drop (removed)"``) ->
        region -> CI dict."""
        from .analysis import importance_ci

        seeds = list(perturbed_by_seed)
        regions = list(perturbed_by_seed[seeds[0]]["perturbed_per_image"])
        stack = lambda per_seed: np.stack([per_seed(s) for s in seeds])  # (n_seeds, n_images)
        full = stack(lambda s: perturbed_by_seed[s]["base_per_image"])
        out = {f"{metric} drop ({mode})": importance_ci(
            full, {r: stack(lambda s: perturbed_by_seed[s]["perturbed_per_image"][r]) for r in regions}, n_boot=n_boot, seed=self.seed)}
        if removed_by_seed is not None:
            scores = self.metric_per_image(self.predict(removed_by_seed), metric)
            out[f"{metric} drop (removed)"] = importance_ci(
                stack(lambda s: scores[("All", s)]), {r: stack(lambda s: scores[(f"without {r}", s)]) for r in regions},
                n_boot=n_boot, seed=self.seed)
        return out

    def scorer(self, model, metric: str, *, per_image: bool = False):
        """``score(voxels) -> float`` of ``model`` on the evaluation subject's test images: a caption
        metric of :data:`~otnsd.metrics.CAPTION_METRICS` (corpus level, no SPICE) or a retrieval
        metric of :func:`~otnsd.metrics.retrieval_scores` (e.g. ``top1_brain2image``).
        ``per_image=True``: the per-image scores (n,) whose mean is that score
        (:meth:`metric_per_image`: CIDEr and retrieval metrics)."""
        from .metrics import CAPTION_METRICS, caption_scores, retrieval_scores
        from .train import predict

        if per_image:
            _check_per_image_metric(metric)  # before any work
        target = self.data.image_embeddings(self.ids)

        def score(voxels):
            emb = predict(model, voxels, self.subject)
            if per_image:
                return self.metric_per_image({"model": emb}, metric)["model"]
            if metric in CAPTION_METRICS:
                return caption_scores(self.caption(emb), self.references, spice=False)["corpus"][metric]
            return float(retrieval_scores(emb, target)[metric].mean())

        return score

    # outputs
    def savefig(self, fig, name: str):
        return savefig(fig, name, self.fig_dir)

    def write_table(self, rows, columns, name: str, *, caption: str = ""):
        return write_table(rows, columns, name, self.fig_dir, caption=caption)


def _is_per_image_metric(metric: str) -> bool:
    """CIDEr and the retrieval metrics are means of per-image scores; corpus BLEU, METEOR, ROUGE are not."""
    from .metrics import CAPTION_METRICS

    return metric == "CIDEr" or metric not in CAPTION_METRICS


def _check_per_image_metric(metric: str) -> None:
    if not _is_per_image_metric(metric):
        raise ValueError(f"corpus {metric} is not a mean of per-image scores: use CIDEr or a retrieval metric "
                         "(e.g. top1_brain2image)")


def _open(ex: Experiment, subjects=None, **options):
    """The dataset of the experiment's shared parameters, with simulator ``options`` on top."""
    if ex.dataset == "simulated":
        options = {"difficulty": ex.difficulty, "control": ex.control, **options}
    elif ex.difficulty != "nsd" or ex.control != "none" or options:
        raise ValueError(f"difficulty={ex.difficulty!r}, control={ex.control!r} and corrupted trials are simulator "
                         "settings: use dataset='simulated', or leave difficulty at 'nsd' (real NSD is as hard as it "
                         "is) and control at 'none'")
    return open_dataset(ex.dataset, seed=ex.seed, root=ex.data_root, features=ex.clip_features, subjects=subjects,
                        **options)


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
    ex.data = _open(ex, subjects=subjects)
    use_style()
    return ex
