"""Calibration of the simulator's "nsd" difficulty (otnsd.data.DIFFICULTIES), all simulated.

Target (quoted from the paper's Table 1, real NSD, Shikra-7B): the MSE model reaches 32% of the
ceiling's CIDEr (UMBRAE(MSE)-S1 51.50 vs Shikra-w/img 161.43). For each candidate noise level this
trains the Table 1 MSE-S1 model (small encoder, 20 epochs, seed 0) and prints its CIDEr, the
ceiling's (true image embeddings through the same prefix captioner) and their ratio.

    python benchmarks/calibrate_difficulty.py                       # the default candidates
    python benchmarks/calibrate_difficulty.py 3.0,2.0 4.0,2.0        # code_noise,voxel_noise pairs
"""

import sys

from otnsd.caption import make_captioner
from otnsd.data import open_dataset
from otnsd.experiments import paper_models
from otnsd.metrics import caption_scores
from otnsd.paper import TABLE1_QUOTED
from otnsd.train import fit_many

CANDIDATES = ((1.0, 1.0), (2.0, 1.5), (3.0, 2.0), (4.0, 2.0))
QUOTED_RATIO = TABLE1_QUOTED["UMBRAE(MSE)-S1*"][6] / TABLE1_QUOTED["Shikra-w/img"][6]


def main(argv: list[str]) -> None:
    candidates = [tuple(float(x) for x in a.split(",")) for a in argv] or CANDIDATES
    print(f"target (quoted, real NSD): MSE / ceiling CIDEr = {QUOTED_RATIO:.2f}")
    print(f"{'code_noise':>10s} {'voxel_noise':>11s} {'MSE CIDEr':>10s} {'ceiling':>8s} {'ratio':>6s}  (simulated)")
    for code_noise, voxel_noise in candidates:
        data = open_dataset("simulated", seed=0, code_noise=code_noise, voxel_noise=voxel_noise)
        ids = data.subject(1).test_image_ids
        refs = data.captions(ids)
        caption = make_captioner("prefix", data, 1, progress=False)
        model = fit_many({"MSE-S1": paper_models()["MSE-S1"]}, data, progress=False)["MSE-S1"]
        cider = {name: caption_scores(caption(emb), refs, spice=False)["corpus"]["CIDEr"]
                 for name, emb in (("mse", model.predict_test(data, 1)), ("ceiling", data.image_embeddings(ids)))}
        print(f"{code_noise:10.1f} {voxel_noise:11.1f} {cider['mse']:10.1f} {cider['ceiling']:8.1f} "
              f"{cider['mse'] / cider['ceiling']:6.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
