"""What a training run reads: each subject's training and validation tensors, and the batches of an epoch.

The last ``val_images`` training images of each subject (at most a fifth) are held out for
validation, their repeats averaged. A training step takes one randomly chosen repeat of each of its
images. Cross-subject training draws ``subjects_per_step`` subjects at random for every step and
takes an equal part of the batch from each, as the paper does. With ``keep_true_pairs`` a
mislabelled row follows the row that holds its image's responses in the epoch's order, so both
land in one batch (unless the pair straddles a batch boundary).
"""

from __future__ import annotations

import numpy as np
import torch


def voxel_mask(dataset, subject: int, regions=None) -> np.ndarray:
    """Boolean mask of the voxels a model of ``regions`` sees (all voxels when None). The other
    regions' voxels are removed from the input, not zeroed."""
    return dataset.subject(subject).voxel_mask(regions)


class SubjectSplit:
    """One subject's training and validation tensors (float32, CPU)."""

    def __init__(self, dataset, subject: int, val_images: int, regions=None, *, keep_true_pairs: bool = False):
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
        self.partner = true_partners(d, n - n_val) if keep_true_pairs else None
        flat = self.train_voxels.reshape(-1, self.train_voxels.shape[-1])
        if flat.dtype == torch.float32:
            self.mean, self.std = flat.mean(0), flat.std(0)
        else:
            self.mean, self.std = chunked_mean_std(flat)

    def __len__(self):
        return len(self.train_voxels)

    def batch(self, idx: np.ndarray, rng: np.random.Generator):
        reps = rng.integers(self.train_voxels.shape[1], size=len(idx))
        voxels = self.train_voxels[torch.from_numpy(idx), torch.from_numpy(reps)].float()
        return voxels, self.train_targets[torch.from_numpy(idx)]


def true_partners(d, n_rows: int) -> np.ndarray:
    """For each of the first ``n_rows`` training rows of ``d``, the row labelled with the image
    whose responses it holds (-1: none among them, or the row is labelled right)."""
    true_ids = d.meta.get("true_image_ids")
    if true_ids is None:
        raise ValueError("keep_true_pairs needs a dataset that knows each training row's true image "
                         "(the simulator with mislabel_rate > 0)")
    row_of = {int(image): row for row, image in enumerate(d.train_image_ids[:n_rows])}
    partner = np.array([row_of.get(int(true_ids[i]), -1) for i in range(n_rows)])
    partner[partner == np.arange(n_rows)] = -1
    return partner


def paired_order(perm: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """``perm`` with each row's partner moved right after it (partners are mutual)."""
    placed = np.zeros(len(perm), dtype=bool)
    order = []
    for i in perm:
        if not placed[i]:
            order.append(i)
            placed[i] = True
            j = partner[i]
            if j >= 0 and not placed[j]:
                order.append(j)
                placed[j] = True
    return np.array(order)


def chunked_mean_std(x: torch.Tensor, rows: int = 4096):
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


def steps_per_epoch(splits: list[SubjectSplit], batch_size: int) -> int:
    return sum(len(s) for s in splits) // batch_size


def epoch_batches(splits: list[SubjectSplit], batch_size: int, subjects_per_step: int, rng: np.random.Generator):
    """Yield the (subject, voxels, targets) chunks of each step of one epoch; all randomness comes
    from ``rng``."""
    if len(splits) == 1:
        s = splits[0]
        perm = rng.permutation(len(s))
        if s.partner is not None:
            perm = paired_order(perm, s.partner)
        for i in range(steps_per_epoch(splits, batch_size)):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            yield [(s.subject, *s.batch(idx, rng))]
        return
    perms = {s.subject: list(rng.permutation(len(s))) for s in splits}
    per = batch_size // subjects_per_step
    for _ in range(steps_per_epoch(splits, batch_size)):
        chosen = rng.choice(len(splits), size=subjects_per_step, replace=False)
        chunks = []
        for k in sorted(chosen):
            s = splits[k]
            if len(perms[s.subject]) < per:
                perms[s.subject] = list(rng.permutation(len(s)))
            idx = np.array(perms[s.subject][:per])
            del perms[s.subject][:per]
            chunks.append((s.subject, *s.batch(idx, rng)))
        yield chunks
