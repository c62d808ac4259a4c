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
import os
import re
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.std import tqdm  # plain text bars: no widget dependency, same in notebooks and shells

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
            json.dumps({"data": dataset.fingerprint, "subject": subject, "cfg": asdict(cfg), "v": 1}, sort_keys=True).encode()
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
        tmp = f"{path}.tmp{os.getpid()}"
        torch.save({"vocab": self.vocab, "cfg": asdict(self.cfg), "embedding_shape": self.embedding_shape,
                    "state_dict": self.model.state_dict()}, tmp)
        os.replace(tmp, path)

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
