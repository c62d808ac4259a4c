"""Captioners fed image-space embeddings (T x D), true or predicted from the brain.

* :class:`PrefixCaptioner` — the CPU stand-in for the paper's frozen LLM: a small GRU decoder
  conditioned on the embedding, trained once on (true image embedding, caption) pairs of the
  training images, cached, then frozen and fed brain embeddings instead.
* :class:`RetrievalCaptioner` — a model-free reading: the caption of the nearest training image in
  embedding space.

The paper's own captioner (Shikra-7B fed projected brain tokens) needs weights that cannot be
fetched here; see the README for its status.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.std import tqdm  # plain text bars: no widget dependency, same in notebooks and shells

from .paths import atomic_path
from .paths import runs_dir as _runs_dir

_WORD = re.compile(r"[a-z]+")
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class RetrievalCaptioner:
    """Caption of the nearest training image (cosine on flattened, or token-pooled, embeddings).

    Parameters
    ----------
    embeddings : array (n, T, D) or (n, D)
        Embeddings of the training images.
    captions : list of lists of str
        Their captions; the first caption of the nearest image is returned.
    pooled : bool
        Compare mean-pooled tokens (blind to token order) instead of flattened embeddings.
    """

    def __init__(self, embeddings: np.ndarray, captions: list[list[str]], *, pooled: bool = False):
        if len(embeddings) != len(captions):
            raise ValueError(f"{len(embeddings)} embeddings for {len(captions)} caption sets")
        self.pooled = pooled
        self.keys = self._prep(embeddings)
        self.captions = captions

    def _prep(self, e):
        e = np.asarray(e, dtype=np.float64)
        if self.pooled and e.ndim == 3:
            e = e.mean(1)
        e = e.reshape(len(e), -1)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def __call__(self, embeddings: np.ndarray) -> list[str]:
        nearest = (self._prep(embeddings) @ self.keys.T).argmax(1)
        return [self.captions[i][0] for i in nearest]


@dataclass(frozen=True)
class PrefixConfig:
    hidden: int = 256
    word_dim: int = 64
    epochs: int = 5
    batch_size: int = 128
    lr: float = 3e-3
    max_len: int = 24
    seed: int = 0


class _PrefixDecoder(nn.Module):
    def __init__(self, n_in: int, vocab: int, cfg: PrefixConfig):
        super().__init__()
        self.prefix = nn.Sequential(nn.LayerNorm(n_in), nn.Linear(n_in, cfg.hidden), nn.Tanh())
        self.cond = nn.Linear(cfg.hidden, cfg.word_dim)
        self.embed = nn.Embedding(vocab, cfg.word_dim)
        self.gru = nn.GRU(2 * cfg.word_dim, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, vocab)

    def forward(self, emb, tokens):
        h = self.prefix(emb.flatten(1))
        c = self.cond(h)[:, None, :].expand(-1, tokens.shape[1], -1)
        x = torch.cat([self.embed(tokens), c], dim=-1)
        y, _ = self.gru(x, h[None].contiguous())
        return self.out(y)


class PrefixCaptioner:
    """A small caption decoder conditioned on a (T, D) embedding; greedy decoding.

    Use :meth:`fit_or_load` to train it once on a dataset's true image embeddings (cached under the
    runs folder by the dataset's fingerprint and the configuration), then call it on embeddings.
    """

    def __init__(self, vocab: list[str], model: _PrefixDecoder, cfg: PrefixConfig, embedding_shape):
        self.vocab, self.model, self.cfg = vocab, model, cfg
        self.index = {w: i for i, w in enumerate(vocab)}
        self.embedding_shape = tuple(embedding_shape)
        self.model.eval()

    # -------------------------------------------------------------- training
    @classmethod
    def train(cls, embeddings: np.ndarray, captions: list[list[str]], cfg: PrefixConfig = PrefixConfig(),
              *, progress: bool = True) -> "PrefixCaptioner":
        """Fit on (embedding, caption) pairs: every caption of every image is one example."""
        torch.manual_seed(cfg.seed)
        counts: dict[str, int] = {}
        for caps in captions:
            for c in caps:
                for w in _words(c):
                    counts[w] = counts.get(w, 0) + 1
        vocab = [PAD, BOS, EOS] + sorted(counts)
        index = {w: i for i, w in enumerate(vocab)}
        rows, seqs = [], []
        for i, caps in enumerate(captions):
            for c in caps:
                ids = [index[BOS]] + [index[w] for w in _words(c)][: cfg.max_len - 2] + [index[EOS]]
                rows.append(i)
                seqs.append(ids)
        L = max(len(s) for s in seqs)
        tokens = torch.full((len(seqs), L), index[PAD], dtype=torch.long)
        for k, s in enumerate(seqs):
            tokens[k, : len(s)] = torch.tensor(s)
        emb = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        rows = torch.tensor(rows)
        n_in = int(np.prod(emb.shape[1:]))
        model = _PrefixDecoder(n_in, len(vocab), cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
        g = torch.Generator().manual_seed(cfg.seed)
        steps = cfg.epochs * ((len(seqs) + cfg.batch_size - 1) // cfg.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
        model.train()
        for _ in tqdm(range(cfg.epochs), desc="train captioner", disable=not progress):
            perm = torch.randperm(len(seqs), generator=g)
            for b in range(0, len(seqs), cfg.batch_size):
                idx = perm[b : b + cfg.batch_size]
                tok = tokens[idx]
                logits = model(emb[rows[idx]], tok[:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, len(vocab)), tok[:, 1:].reshape(-1), ignore_index=index[PAD])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
        return cls(vocab, model, cfg, emb.shape[1:])

    @classmethod
    def fit_or_load(cls, dataset, subject: int = 1, cfg: PrefixConfig = PrefixConfig(), runs_dir=None,
                    *, progress: bool = True) -> "PrefixCaptioner":
        """Train on ``subject``'s training images (true embeddings, all captions), cached."""
        key = hashlib.sha256(
            json.dumps({"data": dataset.stimulus_fingerprint, "subject": subject, "cfg": asdict(cfg), "v": 2}, sort_keys=True).encode()
        ).hexdigest()[:16]
        path = _runs_dir(runs_dir) / "captioner" / f"prefix-{key}.pt"
        if path.exists():
            return cls.load(path)
        ids = dataset.subject(subject).train_image_ids
        cap = cls.train(dataset.image_embeddings(ids), dataset.captions(ids), cfg, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        cap.save(path)
        return cap

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            torch.save({"vocab": self.vocab, "cfg": asdict(self.cfg), "embedding_shape": self.embedding_shape,
                        "state_dict": self.model.state_dict()}, tmp)

    @classmethod
    def load(cls, path) -> "PrefixCaptioner":
        blob = torch.load(path, map_location="cpu", weights_only=False)
        cfg = PrefixConfig(**blob["cfg"])
        model = _PrefixDecoder(int(np.prod(blob["embedding_shape"])), len(blob["vocab"]), cfg)
        model.load_state_dict(blob["state_dict"], strict=True)
        return cls(blob["vocab"], model, cfg, blob["embedding_shape"])

    # -------------------------------------------------------------- decoding
    @torch.no_grad()
    def __call__(self, embeddings: np.ndarray, batch_size: int = 256) -> list[str]:
        emb = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        if tuple(emb.shape[1:]) != self.embedding_shape:
            raise ValueError(f"this captioner reads embeddings of shape {self.embedding_shape}; got {tuple(emb.shape[1:])}")
        out = []
        for b in range(0, len(emb), batch_size):
            out.extend(self._greedy(emb[b : b + batch_size]))
        return out

    def _greedy(self, emb):
        m = self.model
        h = m.prefix(emb.flatten(1))
        c = m.cond(h)[:, None, :]
        state = h[None].contiguous()
        tok = torch.full((len(emb), 1), self.index[BOS], dtype=torch.long)
        words = [[] for _ in range(len(emb))]
        done = torch.zeros(len(emb), dtype=torch.bool)
        for _ in range(self.cfg.max_len):
            y, state = m.gru(torch.cat([m.embed(tok), c], dim=-1), state)
            logits = m.out(y[:, -1])
            logits[:, self.index[PAD]] = -float("inf")
            logits[:, self.index[BOS]] = -float("inf")
            tok = logits.argmax(-1, keepdim=True)
            for i, t in enumerate(tok[:, 0].tolist()):
                if not done[i]:
                    if t == self.index[EOS]:
                        done[i] = True
                    else:
                        words[i].append(self.vocab[t])
            if bool(done.all()):
                break
        return [" ".join(w).capitalize() + "." if w else "" for w in words]


# ---------------------------------------------------------------------------------- Shikra
SHIKRA_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions. USER: Describe this image "
    "<image> as simply as possible. ASSISTANT:"
)
IM_START, IM_PATCH, IM_END = "<im_start>", "<im_patch>", "<im_end>"


class ShikraCaptioner:
    """The paper's captioner: Shikra (LlamaForCausalLM + ``mm_projector``) fed brain tokens.

    UMBRAE's prompt is tokenised with ``<image>`` expanded to ``<im_start>``, ``n_patches`` x
    ``<im_patch>``, ``<im_end>``; the embeddings of the ``<im_patch>`` positions are replaced by the
    projected brain tokens (``mm_projector``: Linear(1024, hidden)), and the caption is decoded
    greedily. Build it from a local Shikra-7B folder with :meth:`from_pretrained`, or from any
    Llama model, tokenizer and projector (the tests use a tiny random one).
    """

    def __init__(self, model, tokenizer, mm_projector: nn.Module, *, n_patches: int = 256,
                 max_new_tokens: int = 40, prompt: str = SHIKRA_PROMPT):
        missing = [t for t in (IM_START, IM_PATCH, IM_END) if t not in tokenizer.get_vocab()]
        if missing:
            raise ValueError(f"the tokenizer lacks Shikra's image tokens {missing}; is this a Shikra tokenizer?")
        if "<image>" not in prompt:
            raise ValueError("the prompt must hold an <image> placeholder")
        self.model, self.tokenizer, self.mm_projector = model.eval(), tokenizer, mm_projector.eval()
        self.n_patches, self.max_new_tokens = n_patches, max_new_tokens
        self.patch_id = tokenizer.convert_tokens_to_ids(IM_PATCH)
        image = IM_START + IM_PATCH * n_patches + IM_END
        self.prompt_ids = tokenizer(prompt.replace("<image>", image), return_tensors="pt").input_ids[0]
        n_found = int((self.prompt_ids == self.patch_id).sum())
        if n_found != n_patches:
            raise ValueError(f"the tokenised prompt holds {n_found} <im_patch> tokens, expected {n_patches}")

    @classmethod
    def from_pretrained(cls, path, *, dtype=torch.float16, device="cpu", **kwargs) -> "ShikraCaptioner":
        """Load Shikra from a local folder (no download): its Llama weights, tokenizer and the
        ``mm_projector`` weights stored beside them in the checkpoint shards."""
        from pathlib import Path

        from transformers import AutoTokenizer, LlamaForCausalLM

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"no Shikra folder at {path}; download shikra-7b there first")
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = LlamaForCausalLM.from_pretrained(path, local_files_only=True, torch_dtype=dtype).to(device)
        state = _find_projector_weights(path)
        weight = state["weight"]
        projector = nn.Linear(weight.shape[1], weight.shape[0], bias="bias" in state)
        projector.load_state_dict(state, strict=True)
        return cls(model, tokenizer, projector.to(device=device, dtype=dtype), **kwargs)

    def inputs_embeds(self, brain_tokens: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings with the ``<im_patch>`` positions replaced: (B, L, hidden)."""
        if brain_tokens.dim() != 3 or brain_tokens.shape[1] != self.n_patches:
            raise ValueError(f"expected brain tokens of shape (B, {self.n_patches}, D); got {tuple(brain_tokens.shape)}")
        emb_layer = self.model.get_input_embeddings()
        ids = self.prompt_ids.to(emb_layer.weight.device)
        base = emb_layer(ids)[None].expand(len(brain_tokens), -1, -1).clone()
        proj = self.mm_projector(brain_tokens.to(device=base.device, dtype=self.mm_projector.weight.dtype))
        base[:, ids == self.patch_id] = proj.to(base.dtype)
        return base

    @torch.no_grad()
    def __call__(self, embeddings, batch_size: int = 8) -> list[str]:
        emb = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        out = []
        for b in range(0, len(emb), batch_size):
            x = self.inputs_embeds(emb[b : b + batch_size])
            mask = torch.ones(x.shape[:2], dtype=torch.long, device=x.device)
            gen = self.model.generate(inputs_embeds=x, attention_mask=mask, max_new_tokens=self.max_new_tokens,
                                      do_sample=False, num_beams=1, pad_token_id=self.tokenizer.eos_token_id)
            out.extend(t.strip() for t in self.tokenizer.batch_decode(gen, skip_special_tokens=True))
        return out


def _find_projector_weights(path) -> dict:
    """``mm_projector`` weight (and bias) from a Shikra checkpoint's shards."""
    state = {}
    for f in sorted(path.glob("*.safetensors")):
        from safetensors import safe_open

        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():
                if "mm_projector" in k:
                    state[k.rsplit(".", 1)[-1]] = st.get_tensor(k)
    if not state:
        for f in sorted(path.glob("pytorch_model*.bin")):
            blob = torch.load(f, map_location="cpu", weights_only=True)
            state.update({k.rsplit(".", 1)[-1]: v for k, v in blob.items() if "mm_projector" in k})
    if "weight" not in state:
        raise ValueError(f"no mm_projector weights found in {path}; is this a Shikra checkpoint?")
    return {k: v.float() for k, v in state.items()}


CAPTIONERS = ("prefix", "retrieval", "retrieval_pooled", "shikra")


def make_captioner(kind: str, dataset, subject: int = 1, *, runs_dir=None, progress: bool = True,
                   shikra_dir=None, device=None):
    """The captioner a notebook's ``captioner`` parameter names.

    ``"prefix"``: :class:`PrefixCaptioner` trained on ``subject``'s training images (cached);
    ``"retrieval"``: the caption of the nearest training image; ``"retrieval_pooled"``: the same on
    token-pooled embeddings, blind to token order (fair to token-level OT, whose plan may permute
    the tokens of a sample); ``"shikra"``: the paper's frozen
    Shikra-7B from the local folder ``shikra_dir`` (needs the paper-sized encoder, 256 x 1024
    tokens; on a GPU when there is one).
    """
    if kind == "prefix":
        return PrefixCaptioner.fit_or_load(dataset, subject=subject, runs_dir=runs_dir, progress=progress)
    if kind in ("retrieval", "retrieval_pooled"):
        ids = dataset.subject(subject).train_image_ids
        return RetrievalCaptioner(dataset.image_embeddings(ids), dataset.captions(ids), pooled=kind == "retrieval_pooled")
    if kind == "shikra":
        if shikra_dir is None:
            raise ValueError("captioner='shikra' needs shikra_dir: the local folder of the Shikra-7B weights")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return ShikraCaptioner.from_pretrained(shikra_dir, device=device,
                                               dtype=torch.float16 if device != "cpu" else torch.float32)
    raise ValueError(f"unknown captioner {kind!r}; choose one of {', '.join(CAPTIONERS)}")
