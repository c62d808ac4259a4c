"""The brain encoder: voxels -> T x D tokens in the image-embedding space (UMBRAE's design).

A per-subject *voxel tokenizer* turns the voxel vector into ``n_voxel_tokens`` tokens of width
``width``; a *Perceiver resampler* shared by all subjects (learned latent queries that
cross-attend over [voxel tokens; latents], then a feed-forward block, ``depth`` times) condenses
them into ``n_tokens`` latents; a linear head maps each latent to the embedding dimension ``dim``.

UMBRAE's tokenizer applies ``Linear(1, n_voxel_tokens)`` to every voxel and then
``Linear(V, width)`` across voxels. Both maps are linear, so token ``k`` equals
``w_k * (W x) + c_k`` with ``W x`` computed once: this module computes it that way, which gives
the same function without the (batch, V, n_voxel_tokens) intermediate.

Cross-subject models keep one tokenizer (and, optionally, one learned subject token appended to
the voxel tokens) per subject and share everything else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .paths import atomic_path

PRESETS = {
    # UMBRAE's sizes: 256 latents x 1024, depth 6, 16 heads of 96, 256 voxel tokens
    "paper": dict(n_tokens=256, dim=1024, width=1024, n_voxel_tokens=256, depth=6, heads=16, dim_head=96, ff_mult=4),
    # sized for the simulated default on a CPU
    "small": dict(n_tokens=16, dim=64, width=128, n_voxel_tokens=16, depth=2, heads=4, dim_head=32, ff_mult=2),
    # a quarter of small's compute per step: for grids of many models and seeds (notebook 08)
    "tiny": dict(n_tokens=16, dim=64, width=64, n_voxel_tokens=8, depth=1, heads=2, dim_head=32, ff_mult=2),
}


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of :class:`BrainEncoder`. ``n_voxels`` maps each subject to its voxel count."""

    n_voxels: dict[int, int] = field(default_factory=dict)
    n_tokens: int = 16
    dim: int = 64
    width: int = 128
    n_voxel_tokens: int = 16
    depth: int = 2
    heads: int = 4
    dim_head: int = 32
    ff_mult: int = 2
    subject_tokens: bool = False
    dropout: float = 0.0

    def __post_init__(self):
        if not self.n_voxels:
            raise ValueError("n_voxels must map at least one subject to its voxel count, e.g. {1: 15724}")
        object.__setattr__(self, "n_voxels", {int(k): int(v) for k, v in self.n_voxels.items()})
        for f in ("n_tokens", "dim", "width", "n_voxel_tokens", "depth", "heads", "dim_head", "ff_mult"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f} must be at least 1; got {getattr(self, f)}")

    @classmethod
    def preset(cls, name: str, n_voxels: dict[int, int], **overrides) -> "EncoderConfig":
        """``"paper"`` (UMBRAE's sizes) or ``"small"`` (CPU), with any field overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(n_voxels=dict(n_voxels), **{**PRESETS[name], **overrides})

    @property
    def subjects(self) -> tuple[int, ...]:
        return tuple(sorted(self.n_voxels))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_voxels"] = {str(k): v for k, v in self.n_voxels.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"not an EncoderConfig: unknown fields {sorted(unknown)}")
        d = dict(d)
        d["n_voxels"] = {int(k): int(v) for k, v in d["n_voxels"].items()}
        return cls(**d)


class VoxelTokenizer(nn.Module):
    """Voxels (B, V) -> tokens (B, n_voxel_tokens, width), with per-voxel standardisation."""

    def __init__(self, n_voxels: int, n_tokens: int, width: int):
        super().__init__()
        self.project = nn.Linear(n_voxels, width)  # UMBRAE's Linear(V, width)
        self.token_scale = nn.Parameter(torch.randn(n_tokens) / math.sqrt(n_tokens) + 1.0)  # Linear(1, T) weight
        self.token_shift = nn.Parameter(torch.zeros(n_tokens, width))  # Linear(1, T) bias, carried through
        self.register_buffer("voxel_mean", torch.zeros(n_voxels))
        self.register_buffer("voxel_std", torch.ones(n_voxels))

    def forward(self, voxels: torch.Tensor) -> torch.Tensor:
        z = (voxels - self.voxel_mean) / self.voxel_std
        h = self.project(z)  # (B, width)
        return self.token_scale[None, :, None] * h[:, None, :] + self.token_shift[None]


class _Attention(nn.Module):
    def __init__(self, width, heads, dim_head, dropout):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dropout = heads, dropout
        self.norm_media, self.norm_latents = nn.LayerNorm(width), nn.LayerNorm(width)
        self.to_q = nn.Linear(width, inner, bias=False)
        self.to_kv = nn.Linear(width, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, width, bias=False)

    def forward(self, media, latents):
        latents_n = self.norm_latents(latents)
        kv_in = torch.cat([self.norm_media(media), latents_n], dim=1)  # attend over [media; latents]
        B, n_q, _ = latents.shape
        q = self.to_q(latents_n).view(B, n_q, self.heads, -1).transpose(1, 2)
        k, v = self.to_kv(kv_in).chunk(2, dim=-1)
        k = k.view(B, kv_in.shape[1], self.heads, -1).transpose(1, 2)
        v = v.view(B, kv_in.shape[1], self.heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(out.transpose(1, 2).reshape(B, n_q, -1))


class PerceiverResampler(nn.Module):
    """Learned latents cross-attending over [media; latents], then feed-forward, ``depth`` times."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(cfg.n_tokens, cfg.width) * 0.02)
        self.layers = nn.ModuleList()
        for _ in range(cfg.depth):
            ff = nn.Sequential(
                nn.LayerNorm(cfg.width),
                nn.Linear(cfg.width, cfg.ff_mult * cfg.width, bias=False),
                nn.GELU(),
                nn.Linear(cfg.ff_mult * cfg.width, cfg.width, bias=False),
            )
            self.layers.append(nn.ModuleList([_Attention(cfg.width, cfg.heads, cfg.dim_head, cfg.dropout), ff]))
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, media: torch.Tensor) -> torch.Tensor:
        latents = self.latents.expand(media.shape[0], -1, -1)
        for attn, ff in self.layers:
            latents = latents + attn(media, latents)
            latents = latents + ff(latents)
        return self.norm(latents)


class BrainEncoder(nn.Module):
    """Voxels of one subject -> (B, n_tokens, dim) brain tokens.

    >>> cfg = EncoderConfig.preset("small", {1: 100})
    >>> BrainEncoder(cfg)(torch.randn(2, 100), subject=1).shape
    torch.Size([2, 16, 64])
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizers = nn.ModuleDict(
            {str(s): VoxelTokenizer(v, cfg.n_voxel_tokens, cfg.width) for s, v in cfg.n_voxels.items()}
        )
        if cfg.subject_tokens:
            self.subject_token = nn.ParameterDict(
                {str(s): nn.Parameter(torch.randn(1, cfg.width) * 0.02) for s in cfg.n_voxels}
            )
        self.resampler = PerceiverResampler(cfg)
        self.head = nn.Linear(cfg.width, cfg.dim)

    def forward(self, voxels: torch.Tensor, subject: int) -> torch.Tensor:
        key = str(int(subject))
        if key not in self.tokenizers:
            raise ValueError(f"this encoder has no tokenizer for subject {subject}; it knows {list(self.cfg.subjects)}")
        V = self.cfg.n_voxels[int(subject)]
        if voxels.dim() != 2 or voxels.shape[1] != V:
            raise ValueError(f"subject {subject} needs voxels of shape (batch, {V}); got {tuple(voxels.shape)}")
        media = self.tokenizers[key](voxels)
        if self.cfg.subject_tokens:
            media = torch.cat([media, self.subject_token[key].expand(len(media), -1, -1)], dim=1)
        return self.head(self.resampler(media))

    def set_voxel_stats(self, subject: int, mean, std) -> None:
        """Per-voxel standardisation (from the training set) applied before the tokenizer."""
        tok = self.tokenizers[str(int(subject))]
        tok.voxel_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        tok.voxel_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def load_encoder(path, expected: EncoderConfig | None = None, map_location="cpu") -> BrainEncoder:
    """Load a checkpoint written by :func:`save_encoder`; a mismatch is an error, never ignored.

    Raises ``ValueError`` when the checkpoint's architecture or subject set differs from
    ``expected`` (when given), or when its weights do not fit its own architecture.
    """
    try:
        blob = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated or garbage: torch and pickle raise many kinds
        raise ValueError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(blob, dict) or "encoder_config" not in blob or "state_dict" not in blob:
        raise ValueError(f"{path} is not an otnsd encoder checkpoint (no encoder_config/state_dict)")
    cfg = EncoderConfig.from_dict(blob["encoder_config"])
    if expected is not None and cfg != expected:
        diff = {
            k: (v, getattr(expected, k)) for k, v in asdict(cfg).items() if v != getattr(expected, k)
        }
        raise ValueError(
            f"checkpoint {path} holds another architecture or subject set than expected; "
            f"differences (checkpoint, expected): {diff}"
        )
    model = BrainEncoder(cfg)
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not match its architecture: {err}") from err
    return model


def save_encoder(model: BrainEncoder, path) -> None:
    """Write the architecture and the weights (atomically) for :func:`load_encoder`."""
    with atomic_path(path) as tmp:
        torch.save({"encoder_config": model.cfg.to_dict(), "state_dict": model.state_dict()}, tmp)
