"""Numbers quoted from the paper (Xiao et al.), for display beside our own results.

Everything here is *quoted*: measured by the paper's authors on real NSD subject 1's test images
with Shikra-7B as the captioner; none of it is computed by otnsd.
"""

TABLE1_COLUMNS = ("BLEU1", "BLEU2", "BLEU3", "BLEU4", "METEOR", "ROUGE", "CIDEr", "SPICE", "CLIP-S", "RefCLIP-S")

# Paper Table 1 (x 100). None where the paper gives none.
TABLE1_QUOTED = {
    "Shikra-w/img": (82.38, 69.9, 58.63, 49.66, 35.6, 65.49, 161.43, 27.62, 80.6, 85.92),
    "UMBRAE-S1": (57.63, 38.02, 25.00, 16.76, 18.41, 42.15, 51.93, 11.83, 66.44, 72.12),
    "UMBRAE": (59.44, 40.48, 27.66, 19.03, 19.45, 43.71, 61.06, 12.79, 67.78, 73.54),
    "UMBRAE(MSE)-S1*": (57.33, 37.69, 24.88, 16.83, 18.23, 41.61, 51.50, 11.86, 66.47, 72.21),
    "UMBRAE(MSE)*": (59.02, 39.9, 27.1, 18.94, 19.08, 43.41, 58.8, 12.68, 67.87, 73.55),
    "OT-S1": (63.25, 44.76, 30.96, 21.72, 21.61, 47.12, 71.52, 14.41, 70.35, 75.68),
    "OT-Cross Subjects": (64.12, 45.18, 31.16, 21.50, 21.42, 46.83, 72.90, 14.51, 69.95, 75.44),
}
