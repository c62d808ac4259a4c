"""NSD's visual areas grouped into the paper's five regions (plus "Other").

The areas are those of NSD's ``prf-visualrois`` and ``floc-{bodies,faces,places,words}`` atlases;
the grouping follows the paper (Sec. 1): Vision V1-V4, Body, Face, Place, Word. Voxels of
``nsdgeneral`` in none of these areas are "Other".
"""

from __future__ import annotations

REGION_AREAS: dict[str, tuple[str, ...]] = {
    "Vision": ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"),
    "Body": ("EBA", "FBA-1", "FBA-2", "mTL-bodies"),
    "Face": ("OFA", "FFA-1", "FFA-2", "mTL-faces"),
    "Place": ("OPA", "PPA", "RSC"),
    "Word": ("OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"),
    "Other": ("Other",),
}
REGIONS: tuple[str, ...] = tuple(REGION_AREAS)
AREAS: tuple[str, ...] = tuple(a for areas in REGION_AREAS.values() for a in areas)
AREA_REGION: dict[str, str] = {a: r for r, areas in REGION_AREAS.items() for a in areas}

# Subject 1, inside nsdgeneral (paper Table 2 and NSD's atlases). The Word region's split into
# areas is not published with the paper; the simulator splits its 1736 voxels in fixed proportions.
SUBJECT1_AREA_COUNTS: dict[str, int] = {
    "V1v": 594, "V1d": 756, "V2v": 834, "V2d": 599, "V3v": 646, "V3d": 541, "hV4": 687,
    "EBA": 2238, "FBA-1": 396, "FBA-2": 300, "mTL-bodies": 0,
    "OFA": 355, "FFA-1": 484, "FFA-2": 203, "mTL-faces": 0,
    "OPA": 1532, "PPA": 720, "RSC": 0,
    "OWFA": 434, "VWFA-1": 521, "VWFA-2": 347, "mfs-words": 261, "mTL-words": 173,
    "Other": 3103,
}  # fmt: skip
SUBJECT1_REGION_COUNTS: dict[str, int] = {
    r: sum(SUBJECT1_AREA_COUNTS[a] for a in areas) for r, areas in REGION_AREAS.items()
}

# nsdgeneral voxel counts per subject (NSD, 1.8 mm).
NSDGENERAL_VOXELS: dict[int, int] = {
    1: 15724, 2: 14278, 3: 15226, 4: 13153, 5: 13039, 6: 17907, 7: 12682, 8: 14386,
}  # fmt: skip
PAPER_SUBJECTS: tuple[int, ...] = (1, 2, 5, 7)


def check_regions(regions) -> tuple[str, ...]:
    """Validate region names; returns them as a tuple."""
    if isinstance(regions, str):
        regions = (regions,)
    regions = tuple(regions)
    unknown = [r for r in regions if r not in REGION_AREAS]
    if unknown:
        raise ValueError(f"unknown region(s) {unknown}; choose from {', '.join(REGIONS)}")
    if not regions:
        raise ValueError(f"give at least one region out of {', '.join(REGIONS)}")
    return regions
