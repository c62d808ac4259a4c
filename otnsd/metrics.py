"""Caption and alignment metrics, reported x 100 like the paper's Table 1, with bootstrap CIs.

Captions: BLEU-1..4, METEOR, ROUGE-L, CIDEr and SPICE through pycocoevalcap with PTB
tokenisation (as BrainHub's ``eval_caption.py``); SPICE only when Stanford CoreNLP 3.6.0's jars
are present (otherwise "n/a" and one warning saying how to add them). CLIP-S and RefCLIP-S as
BrainHub defines them (Hessel et al. 2021): candidates and references prefixed with
"A photo depicts", ``CLIP-S = w * max(cos(image, candidate), 0)`` with ``w = 2.5``, and
``RefCLIP-S`` the harmonic mean of CLIP-S and the largest candidate-reference cosine. The
encoder is pluggable: anything with ``encode_image(image_ids)`` and ``encode_text(texts)``; the
simulated NSD is one.

Alignment: top-1 / top-5 retrieval of the true image among the test images from a brain
embedding (and of the brain embedding from the image), and the mean cosine to the target.

Confidence intervals resample the test images (percentile bootstrap of the mean per-image
score). For BLEU and METEOR, whose corpus score is not a mean of per-image scores, the interval
is that of the per-image mean and is shown beside the corpus score.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

CAPTION_METRICS = ("BLEU1", "BLEU2", "BLEU3", "BLEU4", "METEOR", "ROUGE", "CIDEr", "SPICE")
CLIP_METRICS = ("CLIP-S", "RefCLIP-S")
TABLE1_METRICS = CAPTION_METRICS + CLIP_METRICS  # the paper's Table 1 columns, in its order
CLIP_PREFIX = "A photo depicts"
CLIP_W = 2.5


# ------------------------------------------------------------------------------ captions
def spice_available() -> bool:
    """True when SPICE's Stanford CoreNLP jars are installed next to pycocoevalcap's SPICE."""
    import pycocoevalcap.spice as spice_pkg

    lib = Path(spice_pkg.__file__).parent / "lib"
    return (lib / "stanford-corenlp-3.6.0.jar").exists() and (lib / "stanford-corenlp-3.6.0-models.jar").exists()


_SPICE_WARNED = False


def _warn_spice_missing():
    global _SPICE_WARNED
    if not _SPICE_WARNED:
        import pycocoevalcap.spice as spice_pkg

        lib = Path(spice_pkg.__file__).parent / "lib"
        warnings.warn(
            "SPICE is reported as n/a: its Stanford CoreNLP 3.6.0 jars are missing. To enable it, put "
            f"stanford-corenlp-3.6.0.jar and stanford-corenlp-3.6.0-models.jar (from "
            f"stanford-corenlp-full-2015-12-09.zip) into {lib}",
            stacklevel=3,
        )
        _SPICE_WARNED = True


def _check_captions(predictions, references) -> None:
    if isinstance(predictions, str) or not all(isinstance(p, str) for p in predictions):
        raise ValueError("predictions must be a list of str, one caption per image")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference sets")
    if not predictions:
        raise ValueError("no captions to score")
    for i, refs in enumerate(references):
        # a plain string would be scored character by character
        if isinstance(refs, str) or not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(
                f"references[{i}] must be a non-empty list of str (the reference captions of image {i}); "
                f"got {refs!r}. For one reference per image pass [[r] for r in references]."
            )


def require_java() -> str:
    """Path of the ``java`` executable that METEOR and the PTB tokenizer need; a clear error,
    with how to install it, when there is none. Notebooks call it before any training."""
    import shutil

    java = shutil.which("java")
    if java is None:
        raise RuntimeError(
            "caption metrics need Java (pycocoevalcap's PTB tokenizer and METEOR), and no `java` is on "
            "PATH. Install a Java runtime >= 8, e.g. `sudo apt-get install default-jre-headless` "
            "(Debian/Ubuntu), `conda install -c conda-forge openjdk` or `brew install openjdk`, then "
            "restart the kernel."
        )
    return java


_METEOR = None


def _meteor():
    """One METEOR scorer per process: its Java start-up (about 10 s, paraphrase tables) is paid
    once, later calls take well under a second. Closed when the process exits."""
    global _METEOR
    if _METEOR is None or _METEOR.meteor_p.poll() is not None:  # none yet, or its Java process died
        import atexit

        from pycocoevalcap.meteor.meteor import Meteor

        _METEOR = Meteor()
        atexit.register(_METEOR.meteor_p.kill)
    return _METEOR


def _tokenized_references(references: list[list[str]]) -> dict:
    """The PTB-tokenized references, ``{i: [tokenized caption, ...]}``. A notebook scores many
    models against the same references: they are tokenized once (a Java start-up per call)."""
    frozen = tuple(tuple(refs) for refs in references)
    return {i: list(refs) for i, refs in _tokenize_frozen(frozen).items()}  # a copy: callers may not share lists


@functools.lru_cache(maxsize=4)
def _tokenize_frozen(references: tuple[tuple[str, ...], ...]) -> dict:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    with _java_chatter_captured():
        return PTBTokenizer().tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})


def caption_scores(predictions: list[str], references: list[list[str]], *, spice: str | bool = "auto") -> dict:
    """Corpus and per-image caption metrics (x 100).

    Parameters
    ----------
    predictions : list of str, one generated caption per image
    references : list of lists of str, the reference captions of each image
    spice : "auto" (when its jars are present), True, or False

    Returns
    -------
    dict with ``corpus`` (metric -> float, or None for SPICE when unavailable) and
    ``per_image`` (metric -> array of shape (n,)).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    _check_captions(predictions, references)
    require_java()
    use_spice = spice_available() if spice == "auto" else bool(spice)
    if use_spice and not spice_available():
        raise FileNotFoundError("SPICE was requested but its Stanford CoreNLP jars are missing (see spice_available)")
    gts = _tokenized_references(references)
    with _java_chatter_captured():
        res = PTBTokenizer().tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    corpus, per_image = {}, {}
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    for k in range(4):
        corpus[f"BLEU{k + 1}"] = 100 * bleu[k]
        per_image[f"BLEU{k + 1}"] = 100 * np.asarray(bleu_each[k])
    for name, scorer in (("METEOR", _meteor()), ("ROUGE", Rouge()), ("CIDEr", Cider())):
        score, each = scorer.compute_score(gts, res)
        corpus[name] = 100 * float(score)
        per_image[name] = 100 * np.asarray(each, dtype=float)
    if use_spice:
        from pycocoevalcap.spice.spice import Spice

        score, each = Spice().compute_score(gts, res)
        corpus["SPICE"] = 100 * float(score)
        per_image["SPICE"] = 100 * np.array([e["All"]["f"] for e in each], dtype=float)
    else:
        if spice == "auto":
            _warn_spice_missing()
        corpus["SPICE"] = None
    return {"corpus": corpus, "per_image": per_image}


def cider_per_image(predictions: dict, references: list[list[str]]) -> dict:
    """Per-image CIDEr (x 100) of many captioned sets of the same images, in one tokenizer pass.

    ``predictions``: name -> one caption per image. Each set is scored exactly as
    :func:`caption_scores` scores it alone (the same references, so the same document
    frequencies); tokenizing every set at once saves the Java start-up per set.
    """
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    names = list(predictions)
    for name in names:
        _check_captions(predictions[name], references)
    require_java()
    n = len(references)
    gts = _tokenized_references(references)
    with _java_chatter_captured():
        res = PTBTokenizer().tokenize({(k, i): [{"caption": p}] for k, name in enumerate(names) for i, p in enumerate(predictions[name])})
    out = {}
    for k, name in enumerate(names):
        _, each = Cider().compute_score(gts, {i: res[(k, i)] for i in range(n)})
        out[name] = 100 * np.asarray(each, dtype=float)
    return out


def _normalize(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def clip_scores(encoder, image_ids, predictions: list[str], references: list[list[str]], *, w: float = CLIP_W) -> dict:
    """Per-image CLIP-S and RefCLIP-S (x 100), BrainHub's definitions.

    ``CLIP-S_i = w * max(cos(E_img(i), E_txt(prefix + c_i)), 0)``;
    ``RefCLIP-S_i = H(CLIP-S_i, max_r cos(E_txt(prefix + c_i), E_txt(prefix + r)))`` with H the
    harmonic mean (the text-text part is not scaled by w, as in the reference implementation).
    """
    img = _normalize(encoder.encode_image(image_ids))
    cand = _normalize(encoder.encode_text([f"{CLIP_PREFIX} {p}" for p in predictions]))
    flat_refs = [f"{CLIP_PREFIX} {r}" for refs in references for r in refs]
    ref = _normalize(encoder.encode_text(flat_refs))
    clip_s = w * np.clip((img * cand).sum(1), 0, None)
    ref_sim = np.empty(len(predictions))
    start = 0
    for i, refs in enumerate(references):
        ref_sim[i] = (ref[start : start + len(refs)] @ cand[i]).max()
        start += len(refs)
    ref_sim = np.clip(ref_sim, 0, None)
    denom = clip_s + ref_sim
    refclip = np.where(denom > 0, 2 * clip_s * ref_sim / np.where(denom > 0, denom, 1), 0.0)
    return {"CLIP-S": 100 * clip_s, "RefCLIP-S": 100 * refclip}


# ------------------------------------------------------------------------------ alignment
def retrieval_scores(pred: np.ndarray, target: np.ndarray, *, pooled: bool = False, ks=(1, 5)) -> dict:
    """Per-image retrieval hits (x 100) and cosine to the target.

    ``pred`` and ``target`` are (n, T, D) or (n, D); flattened, or mean-pooled over tokens when
    ``pooled`` (a measure blind to token order, for token-level-trained models). Returns
    ``top{k}_brain2image`` (the true image ranks within the top k among the n test images for
    its brain embedding), ``top{k}_image2brain`` and ``cosine``, each an array of shape (n,).
    """
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    if pooled and pred.ndim == 3:
        pred, target = pred.mean(1), target.mean(1)
    p, t = _normalize(pred.reshape(len(pred), -1)), _normalize(target.reshape(len(target), -1))
    S = p @ t.T
    diag = np.diag(S)
    out = {"cosine": 100 * diag}
    for k in ks:
        out[f"top{k}_brain2image"] = 100.0 * ((S > diag[:, None]).sum(1) < k)
        out[f"top{k}_image2brain"] = 100.0 * ((S > diag[None, :]).sum(0) < k)
    return out


def bootstrap_ci(per_image: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over images; (nan, nan) when ``n_boot`` is 0."""
    x = np.asarray(per_image, dtype=float)
    if n_boot == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def evaluate_captions(encoder, image_ids, predictions, references, *, spice="auto", n_boot=1000, seed=0) -> dict:
    """All Table 1 caption columns: {metric: (value, ci_low, ci_high)}.

    SPICE is None without its jars; CLIP-S and RefCLIP-S are None when ``encoder`` is None (on
    real NSD, pass an :class:`OpenCLIPEncoder` of CLIP ViT-B/32 to get them).
    """
    caps = caption_scores(predictions, references, spice=spice)
    clip = clip_scores(encoder, image_ids, predictions, references) if encoder is not None else {
        "CLIP-S": None, "RefCLIP-S": None}
    out = {}
    for m in CAPTION_METRICS:
        v = caps["corpus"][m]
        out[m] = (None, None, None) if v is None else (v, *bootstrap_ci(caps["per_image"][m], n_boot=n_boot, seed=seed))
    for m, each in clip.items():
        out[m] = (None, None, None) if each is None else (float(each.mean()), *bootstrap_ci(each, n_boot=n_boot, seed=seed))
    return out


def evaluate_alignment(pred, target, *, n_boot=1000, seed=0) -> dict:
    """Retrieval and cosine (flattened and token-pooled): {metric: (value, ci_low, ci_high)}."""
    out = {}
    for pooled in (False, True):
        for m, each in retrieval_scores(pred, target, pooled=pooled).items():
            name = m + ("_pooled" if pooled else "")
            out[name] = (float(each.mean()), *bootstrap_ci(each, n_boot=n_boot, seed=seed))
    return out


def evaluate_embeddings(dataset, image_ids, embeddings, caption, *, references=None, clip_encoder=None,
                        n_boot=1000, seed=0) -> tuple[dict, list[str]]:
    """Caption ``embeddings`` of ``image_ids`` with ``caption`` and score them every way.

    Returns ``({metric: (value, ci_low, ci_high)}, captions)``: the caption metrics of
    :func:`evaluate_captions` and the alignment metrics of :func:`evaluate_alignment` against the
    true image embeddings. CLIP-S uses ``clip_encoder``, else the dataset's own CLIP stand-in
    when it has one (the simulator does), else it is None.
    """
    references = dataset.captions(image_ids) if references is None else references
    captions = caption(embeddings)
    encoder = clip_encoder if clip_encoder is not None else dataset if hasattr(dataset, "encode_image") else None
    scores = {**evaluate_captions(encoder, image_ids, captions, references, n_boot=n_boot, seed=seed),
              **evaluate_alignment(embeddings, dataset.image_embeddings(image_ids), n_boot=n_boot, seed=seed)}
    return scores, captions


@contextlib.contextmanager
def _java_chatter_captured():
    """Keep the Java tokenizer's progress line (with its timing) off the process's stderr; show
    what it wrote if something fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except Exception:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class OpenCLIPEncoder:
    """Real CLIP for CLIP-S / RefCLIP-S through open_clip, from local weights only.

    Parameters
    ----------
    model, preprocess, tokenizer : as returned by open_clip
    images : callable
        ``images(image_ids) -> list of (H, W, 3) uint8 arrays`` (e.g. NSD's ``imgBrick`` rows).
    """

    def __init__(self, model, preprocess, tokenizer, images, device="cpu"):
        self.model, self.preprocess, self.tokenizer = model.eval().to(device), preprocess, tokenizer
        self.images, self.device = images, device

    @classmethod
    def from_local(cls, model_name: str, checkpoint, images, device="cpu") -> "OpenCLIPEncoder":
        """``model_name`` as open_clip names it (BrainHub uses "ViT-B-32"); ``checkpoint`` a local
        weights file. Nothing is downloaded: a missing file is an error that says so."""
        import open_clip

        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"no CLIP weights at {checkpoint}: put the {model_name} checkpoint there (no download is attempted)")
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(checkpoint))
        return cls(model, preprocess, open_clip.get_tokenizer(model_name), images, device)

    def encode_image(self, image_ids) -> np.ndarray:
        import torch
        from PIL import Image

        batch = torch.stack([self.preprocess(Image.fromarray(np.asarray(a, dtype=np.uint8))) for a in self.images(image_ids)])
        with torch.no_grad():
            return self.model.encode_image(batch.to(self.device)).float().cpu().numpy()

    def encode_text(self, texts) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model.encode_text(self.tokenizer(list(texts)).to(self.device)).float().cpu().numpy()


def summarize_seeds(runs: list[dict]) -> dict:
    """Mean and standard deviation over repeated seeds: ``{metric: (mean, std, n)}``.

    ``runs`` holds one result per seed, as :func:`evaluate_captions` or :func:`evaluate_alignment`
    return them (``{metric: (value, ci_low, ci_high)}``); metrics that are None (SPICE without its
    jars) stay None.
    """
    if not runs:
        raise ValueError("no runs to summarize")
    out = {}
    for m in runs[0]:
        vals = [r[m][0] for r in runs]
        if any(v is None for v in vals):
            out[m] = (None, None, len(vals))
        else:
            out[m] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals))
    return out
