"""Learning-rate sweep of the Table 1 single-subject models on the simulated NSD (one seed).

Disclosure for a deviation from the paper: UMBRAE trains with lr 3e-4, otnsd's default is 3e-3.
Prints, for each model and learning rate, the validation MSE of the last epoch and the top-1
retrieval of the true test image (flattened and token-pooled embeddings), all simulated.

    python benchmarks/lr_sweep.py            # trains what the run cache lacks (about 5 min on 2 cores)
"""

from dataclasses import replace

from otnsd.data import open_dataset
from otnsd.experiments import paper_models
from otnsd.metrics import retrieval_scores
from otnsd.train import fit_many

LRS = (3e-4, 1e-3, 3e-3)
MODELS = ("MSE-S1", "OT-S1", "OT-S1 (released code)", "MSE+OT-S1")


def main() -> None:
    data = open_dataset("simulated", seed=0)
    configs = {(name, lr): replace(cfg, lr=lr) for name, cfg in paper_models().items() if name in MODELS for lr in LRS}
    models = fit_many(configs, data)
    target = data.image_embeddings(data.subject(1).test_image_ids)
    print("simulated NSD, subject 1, 20 epochs, seed 0; top-1 among 500 test images (%)")
    print(f"{'model':24s} {'lr':>7s} {'val MSE':>9s} {'top-1':>7s} {'top-1 pooled':>13s}")
    for (name, lr), r in models.items():
        pred = r.predict_test(data, 1)
        flat = retrieval_scores(pred, target)["top1_brain2image"].mean()
        pooled = retrieval_scores(pred, target, pooled=True)["top1_brain2image"].mean()
        print(f"{name:24s} {lr:7.0e} {r.history['val_mse'][-1]:9.1f} {flat:7.1f} {pooled:13.1f}")


if __name__ == "__main__":
    main()
