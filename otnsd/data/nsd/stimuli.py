"""What NSD's images are: their pixels (``nsd_stimuli.hdf5``) and their COCO captions, found
through NSD's stimulus table (``nsd_stim_info_merged.csv``: the COCO id and split of each 73k
image) in COCO's annotation files. Read on first use; the voxels never need them."""

from __future__ import annotations

import csv
import json
from functools import cached_property
from pathlib import Path

import numpy as np

from ...features import read_rows
from .files import COCO_CAPTIONS, IMAGE_SHAPE, N_IMAGES, STIM_INFO, STIMULI, open_h5, require


class Stimuli:
    """The stimuli and captions under ``root``; image ids are checked 0-based 73k ids."""

    def __init__(self, root: Path):
        self.root = root
        self._coco_memo: dict[str, dict[int, list[str]]] = {}

    def captions(self, ids: np.ndarray) -> list[list[str]]:
        """Every COCO caption of each image, in the annotation file's order."""
        coco_id, split = self._stim_info
        unknown = ids[coco_id[ids] < 0]
        if unknown.size:
            raise ValueError(
                f"image ids {unknown[:20].tolist()} are not in the stimulus table "
                f"{self.root / STIM_INFO} (NSD: {STIM_INFO})"
            )
        out = []
        for i in ids:
            table = self._coco_captions(split[i])
            caps = table.get(int(coco_id[i]))
            if not caps:
                raise ValueError(
                    f"COCO image {int(coco_id[i])} (NSD image {int(i)}) has no caption in "
                    f"{self.root / COCO_CAPTIONS[split[i]]}"
                )
            out.append(list(caps))
        return out

    def images(self, ids: np.ndarray) -> np.ndarray:
        """Rows of ``imgBrick``: uint8 (len(ids), 425, 425, 3), in the order asked."""
        path = require(self.root, STIMULI, "the NSD stimuli")
        with open_h5(path, "the NSD stimuli", f"NSD: {STIMULI}") as f:
            if "imgBrick" not in f:
                raise ValueError(f"{path} (NSD: {STIMULI}) has no dataset 'imgBrick'")
            ds = f["imgBrick"]
            if ds.shape != (N_IMAGES, *IMAGE_SHAPE) or ds.dtype != np.uint8:
                raise ValueError(
                    f"{path} (NSD: {STIMULI}): imgBrick is {ds.shape} {ds.dtype}; expected "
                    f"{(N_IMAGES, *IMAGE_SHAPE)} uint8"
                )
            if not len(ids):
                return np.zeros((0, *IMAGE_SHAPE), dtype=np.uint8)
            return read_rows(ds, ids)

    @cached_property
    def _stim_info(self) -> tuple[np.ndarray, np.ndarray]:
        """COCO id (-1 when absent) and COCO split of every 73k image."""
        path = require(self.root, STIM_INFO, "the stimulus table")
        coco = np.full(N_IMAGES, -1, dtype=np.int64)
        split = np.full(N_IMAGES, "", dtype=object)
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            lacking = {"cocoId", "cocoSplit", "nsdId"} - set(reader.fieldnames or ())
            if lacking:
                raise ValueError(f"{path} (NSD: {STIM_INFO}) lacks the columns {sorted(lacking)}")
            for line in reader:
                try:
                    i = int(line["nsdId"])
                    if not 0 <= i < N_IMAGES:
                        raise IndexError(i)
                    coco[i] = int(line["cocoId"])
                except (ValueError, IndexError) as e:
                    raise ValueError(f"{path} (NSD: {STIM_INFO}): bad row {line} (nsdId must be 0..{N_IMAGES - 1})") from e
                split[i] = line["cocoSplit"]
        bad = set(split[coco >= 0]) - set(COCO_CAPTIONS)
        if bad:
            raise ValueError(f"{path} (NSD: {STIM_INFO}): unknown cocoSplit values {sorted(bad)}; expected {list(COCO_CAPTIONS)}")
        return coco, split

    def _coco_captions(self, split: str) -> dict[int, list[str]]:
        if split not in self._coco_memo:
            rel = COCO_CAPTIONS[split]
            name = f"COCO: annotations/{Path(rel).name} of annotations_trainval2017.zip, kept as {rel}"
            path = require(self.root, rel, f"the COCO {split} captions", name)
            try:
                with open(path) as fh:
                    anns = json.load(fh)["annotations"]
                table: dict[int, list[str]] = {}
                for a in anns:
                    table.setdefault(int(a["image_id"]), []).append(str(a["caption"]).strip())
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path} is not a COCO captions file (annotations of image_id, caption): {e}") from e
            self._coco_memo[split] = table
        return self._coco_memo[split]
