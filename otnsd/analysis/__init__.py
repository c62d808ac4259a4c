"""Analyses the notebooks call; the notebooks only call these and plot. One module per topic:

- :mod:`~otnsd.analysis.theory` (notebook 01): :func:`ot_mse_check`, :func:`entropic_error`.
- :mod:`~otnsd.analysis.alignment` (notebooks 01-03): the linear baseline :func:`ridge_predictions`;
  Fig. 1's :func:`correlation_matrix` and :func:`diagonal_contrast`; :func:`plan_on_matches`;
  :func:`true_pair_shares` (notebook 08: does the plan re-pair mislabelled trials?) and
  :func:`match_spread` (its control for regression to the mean).
- :mod:`~otnsd.analysis.regions` (notebooks 04-06): :func:`valid_voxels` (Table 2),
  :func:`interaction_matrix` (:func:`interaction_ci` over seeds), :func:`rank_pairs` and :func:`planted_pair_ranks` (redundancy and
  synergy),
  :func:`rank_agreement` and :func:`rank_test` (against a planted truth, exact permutation p).
- :mod:`~otnsd.analysis.importance` (notebook 06): :func:`gradient_saliency` and
  :func:`perturbation_importance` (Fig. 4's two measures), :func:`importance_ci` (shuffled or
  removed regions, CIs over seeds and images).
- :mod:`~otnsd.analysis.embeddings` (notebooks 05, 07): :func:`probe_r2`, :func:`probe_interaction`,
  :func:`project_embeddings` (PCA / UMAP), :func:`separation` (silhouettes, in the projection or
  the embedding space), :func:`embedding_separations`, :func:`embedding_spread` (collapse to the mean).
- :mod:`~otnsd.analysis.information` (notebook 05): :func:`gaussian_mi` and the partial-information
  decomposition :func:`pid` / :func:`pid_matrix` (redundant, unique, synergistic information).
- :mod:`~otnsd.analysis.compare` (notebooks 03, 04, 06, 08): :func:`mean_gain`, :func:`lambda_robustness`,
  :func:`quoted_gain`, :func:`seed_paired_difference`, :func:`mean_ci`, :func:`lambda_curve` (λ curves
  over seeds), :func:`verdict` (the rule for verdicts) and
  :func:`compare_seeds` (every model family against a baseline over seeds).
"""

from .alignment import (correlation_matrix, diagonal_contrast, match_spread, plan_on_matches, ridge_predictions,
                        true_pair_shares)
from .compare import (compare_seeds, lambda_curve, lambda_robustness, mean_ci, mean_gain, quoted_gain,
                      seed_paired_difference, verdict)
from .embeddings import (embedding_separations, embedding_spread, probe_interaction, probe_r2, project_embeddings,
                         separation)
from .importance import gradient_saliency, importance_ci, perturbation_importance
from .information import gaussian_mi, pid, pid_matrix, reduce_dims
from .regions import (interaction_ci, interaction_matrix, planted_pair_ranks, rank_agreement, rank_pairs, rank_test, region_subsets,
                      valid_voxels)
from .theory import entropic_error, ot_mse_check

__all__ = [
    "ot_mse_check", "entropic_error",
    "ridge_predictions", "correlation_matrix", "diagonal_contrast", "plan_on_matches", "true_pair_shares", "match_spread",
    "valid_voxels", "interaction_matrix", "interaction_ci", "region_subsets", "rank_pairs", "planted_pair_ranks", "rank_agreement",
    "rank_test",
    "mean_gain", "mean_ci", "lambda_robustness", "lambda_curve", "quoted_gain", "seed_paired_difference", "verdict",
    "compare_seeds",
    "gradient_saliency", "perturbation_importance", "importance_ci",
    "gaussian_mi", "pid", "pid_matrix", "reduce_dims",
    "probe_r2", "probe_interaction", "project_embeddings", "separation", "embedding_separations", "embedding_spread",
]
