"""CLIP image features: the alignment targets of real NSD.

The paper (as UMBRAE) aligns brain embeddings with CLIP ViT-L/14's ``hidden_states[-2]`` without
the CLS token: the output of the second-to-last transformer block for the 256 patches of a 224 x
224 image, 256 x 1024 per image. :class:`ClipVisionEncoder` computes them from a local checkpoint
through transformers (``CLIPVisionModel`` folder) or open_clip (model name + weights file);
nothing is downloaded. Images are preprocessed as CLIP does: shorter side resized to 224 with
bicubic interpolation, centre crop 224 x 224, scaled to [0, 1] and normalised with CLIP's
mean and standard deviation.

:func:`extract_features` runs an encoder over images in batches (on the GPU when there is one),
with a progress bar, into an HDF5 file that :class:`otnsd.data.nsd.NSD` reads (``features`` (n,
T, D) float16, ``image_ids`` (n,)). The file is written as it goes: an interrupted run resumes
where it stopped, and only a finished file is marked ``complete``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm.std import tqdm

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FORMAT_VERSION = 1


def preprocess(images, size: int = 224) -> torch.Tensor:
    """uint8 images (n, H, W, 3) -> CLIP input (n, 3, size, size): bicubic resize of the shorter
    side, centre crop, [0, 1], CLIP normalisation."""
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (n, H, W, 3) uint8; got shape {images.shape}")
    out = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, a in enumerate(images):
        img = Image.fromarray(np.asarray(a, dtype=np.uint8))
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        out[i] = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    out = (out - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


class ClipVisionEncoder:
    """CLIP vision tower -> patch tokens of the second-to-last block, without CLS: (n, 256, D).

    Build one with :meth:`from_transformers` or :meth:`from_open_clip`; call it on uint8 images.
    """

    def __init__(self, forward_tokens, identity: str, device="cpu", image_size: int = 224):
        self._forward_tokens = forward_tokens
        self.identity = identity  # names the weights: cached features are only reused for these
        self.device = torch.device(device)
        self.image_size = image_size

    @staticmethod
    def _default_device():
        return "cuda" if torch.cuda.is_available() else "cpu"

    @classmethod
    def from_transformers(cls, folder, device=None) -> "ClipVisionEncoder":
        """A local transformers checkpoint (a ``CLIPModel`` or ``CLIPVisionModel`` folder, e.g.
        ``openai/clip-vit-large-patch14`` saved with ``save_pretrained``)."""
        from transformers import CLIPVisionModel

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"no CLIP checkpoint in {folder} (config.json missing): put a local copy of "
                "openai/clip-vit-large-patch14 there (nothing is downloaded)")
        device = device or cls._default_device()
        model = CLIPVisionModel.from_pretrained(folder, local_files_only=True).eval().to(device)

        def forward_tokens(pixels):
            return model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]

        return cls(forward_tokens, _identity(folder / "config.json", *sorted(folder.glob("*.safetensors")),
                                             *sorted(folder.glob("*.bin"))), device, model.config.image_size)

    @classmethod
    def from_open_clip(cls, model_name: str, checkpoint, device=None) -> "ClipVisionEncoder":
        """An open_clip model (``"ViT-L-14"``) with weights from a local file."""
        import open_clip

        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"no CLIP weights at {checkpoint}: put the {model_name} checkpoint there "
                                    "(nothing is downloaded)")
        device = device or cls._default_device()
        model = open_clip.create_model(model_name, pretrained=str(checkpoint)).eval().to(device)
        visual = model.visual
        blocks = visual.transformer.resblocks
        if len(blocks) < 2:
            raise ValueError(f"{model_name} has {len(blocks)} transformer block(s); hidden_states[-2] needs two")
        batch_first = getattr(visual.transformer, "batch_first", False)
        captured = {}
        blocks[-2].register_forward_hook(lambda mod, inp, out: captured.__setitem__("x", out))

        def forward_tokens(pixels):
            visual(pixels)
            x = captured.pop("x")
            x = x if batch_first else x.transpose(0, 1)
            return x[:, 1:]

        size = visual.image_size[0] if isinstance(visual.image_size, (tuple, list)) else visual.image_size
        return cls(forward_tokens, _identity(checkpoint, model_name), device, int(size))

    def __call__(self, images) -> np.ndarray:
        with torch.no_grad():
            tokens = self._forward_tokens(preprocess(images, self.image_size).to(self.device))
        return tokens.float().cpu().numpy()


def _identity(*parts) -> str:
    """Names the weights by file names and sizes (not contents: checkpoints are large)."""
    h = hashlib.sha256()
    for part in parts:
        path = Path(part)
        h.update(path.name.encode() if path.is_file() else str(part).encode())
        if path.is_file():
            h.update(str(path.stat().st_size).encode())
    return h.hexdigest()[:16]


def extract_features(encoder: ClipVisionEncoder, images, image_ids, out, *, batch_size: int = 64,
                     progress: bool = True) -> Path:
    """Features of ``image_ids`` into the HDF5 file ``out``; resumes an interrupted run.

    Parameters
    ----------
    encoder : ClipVisionEncoder (or any callable uint8 (n, H, W, 3) -> (n, T, D) with ``identity``)
    images : callable ``images(ids) -> uint8 (n, H, W, 3)`` (e.g. ``NSD.images``)
    image_ids : int array (n,), e.g. every NSD image a subject saw
    out : path of the HDF5 file

    Returns
    -------
    Path of the finished file: datasets ``features`` (n, T, D) float16, ``image_ids`` (n,) and
    ``done`` (n,) bool; attributes ``encoder`` (the weights' identity) and ``complete``.
    """
    import h5py

    out = Path(out)
    ids = np.asarray(image_ids, dtype=np.int64).reshape(-1)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("image_ids must not repeat")
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "a") as f:
        if "image_ids" in f:
            if f.attrs.get("encoder") != encoder.identity or not np.array_equal(f["image_ids"][:], ids):
                raise ValueError(f"{out} holds features of other images or another CLIP checkpoint; "
                                 "remove it or choose another file")
        done = f["done"][:] if "done" in f else np.zeros(len(ids), dtype=bool)
        todo = np.flatnonzero(~done)
        bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc="CLIP features", disable=not progress, unit="img")
        for start in range(0, len(todo), batch_size):
            rows = todo[start : start + batch_size]
            feats = encoder(images(ids[rows]))
            if "features" not in f:
                f.create_dataset("image_ids", data=ids)
                f.create_dataset("features", shape=(len(ids), *feats.shape[1:]), dtype="float16",
                                 chunks=(1, *feats.shape[1:]))
                f.create_dataset("done", data=np.zeros(len(ids), dtype=bool))
                f.attrs["encoder"] = encoder.identity
                f.attrs["version"] = FORMAT_VERSION
                f.attrs["complete"] = False
            f["features"][rows] = feats.astype(np.float16)  # rows increase, as h5py needs
            f["done"][rows] = True
            f.flush()
            bar.update(len(rows))
        bar.close()
        f.attrs["complete"] = True
    return out


class FeatureFile:
    """A features file as :func:`extract_features` writes it, opened once: its token shape
    ``(T, D)``, its image-id index, and rows read by id. Malformed files are errors that say what
    was expected; an unfinished extraction (``complete`` false) is refused.
    """

    def __init__(self, path):
        import h5py

        self.path = Path(path)
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise ValueError(f"cannot read the image-feature file {self.path} (CLIP ViT-L/14 features) as HDF5: {e}") from e
        with f:
            for key in ("features", "image_ids"):
                if key not in f:
                    raise ValueError(f"the feature file {self.path} has no dataset {key!r}; expected 'features' (n, T, D) "
                                     "and 'image_ids' (n,)")
            self.complete_flag = f.attrs.get("complete")
            if self.complete_flag is not None and not self.complete_flag:
                raise ValueError(f"the feature file {self.path} is unfinished (an interrupted otnsd.features.extract_features "
                                 "run): run it again to resume")
            shape, ids = f["features"].shape, f["image_ids"][:]
        if len(shape) != 3 or ids.shape != (shape[0],):
            raise ValueError(f"the feature file {self.path}: features {shape} and image_ids {ids.shape}; expected (n, T, D) and (n,)")
        ids = ids.astype(np.int64)
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"the feature file {self.path} lists some image ids twice")
        self.shape = (int(shape[1]), int(shape[2]))
        self.index = {int(i): r for r, i in enumerate(ids)}

    def rows(self, image_ids) -> np.ndarray:
        """Row of each id in the file, -1 where the file has none."""
        return np.array([self.index.get(int(i), -1) for i in np.asarray(image_ids).reshape(-1)], dtype=np.int64)

    def read(self, rows) -> np.ndarray:
        """Features (len(rows), T, D) float32 of the given rows (any order, repeats allowed)."""
        import h5py

        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros((0, *self.shape), dtype=np.float32)
        with h5py.File(self.path, "r") as f:
            return read_rows(f["features"], rows).astype(np.float32, copy=False)


def read_rows(ds, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` of an HDF5 dataset for any order and repeats, reading each run of consecutive
    rows once (h5py itself only takes increasing, distinct rows)."""
    uniq, inverse = np.unique(rows, return_inverse=True)
    out = np.empty((len(uniq), *ds.shape[1:]), dtype=ds.dtype)
    starts = np.flatnonzero(np.diff(uniq, prepend=uniq[0] - 2) != 1)
    ends = np.append(starts[1:], len(uniq))
    for a, b in zip(starts.tolist(), ends.tolist()):
        out[a:b] = ds[int(uniq[a]) : int(uniq[b - 1]) + 1]
    return out[inverse.reshape(-1)]


def read_features(path, image_ids) -> np.ndarray:
    """Features (len(image_ids), T, D) float32 from a file written by :func:`extract_features`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CLIP feature file at {path}; compute it with otnsd.features.extract_features")
    feats = FeatureFile(path)
    if feats.complete_flag is None:
        raise ValueError(f"{path} is unfinished (an interrupted extract_features run): run it again to resume")
    ids = np.asarray(image_ids, dtype=np.int64).reshape(-1)
    rows = feats.rows(ids)
    missing = ids[rows < 0].tolist()
    if missing:
        raise KeyError(f"{path} has no features for image ids {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    return feats.read(rows)
