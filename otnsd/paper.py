"""Numbers quoted from the paper (Xiao et al.), for display beside our own results.

Everything here is *quoted*: measured by the paper's authors on real NSD subject 1's test images
with Shikra-7B as the captioner; none of it is computed by otnsd.
"""

from .metrics import TABLE1_METRICS as TABLE1_COLUMNS  # the order of the quoted tuples below

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

# Paper Table 2: the region sets (None = all voxels, the "Other" voxels included) and their scores
# (x 100, the TABLE1_COLUMNS order) with the valid-voxel counts of subject 1.
TABLE2_REGION_SETS = {
    "All": None,
    "Vision": ("Vision",),
    "Place": ("Place",),
    "Face": ("Face",),
    "Word": ("Word",),
    "Body": ("Body",),
    "Place+Face+Word+Body": ("Place", "Face", "Word", "Body"),
    "Vision+Place+Face+Word+Body": ("Vision", "Place", "Face", "Word", "Body"),
}
TABLE2_QUOTED = {
    "All": ((63.25, 44.76, 30.96, 21.72, 21.61, 47.12, 71.52, 14.41, 70.35, 75.68), "15724/15724"),
    "Vision": ((43.11, 21.68, 10.23, 5.48, 10.65, 31.64, 10.95, 3.03, 46.24, 52.94), "4657/15724"),
    "Place": ((48.14, 27.75, 15.09, 8.72, 13.25, 35.23, 23.00, 6.03, 54.25, 60.32), "2252/15724"),
    "Face": ((44.87, 23.02, 10.89, 5.42, 11.47, 32.58, 12.33, 3.94, 49.10, 55.65), "1042/15724"),
    "Word": ((42.68, 20.44, 9.16, 4.61, 10.19, 31.45, 8.31, 2.22, 43.99, 50.71), "1736/15724"),
    "Body": ((53.09, 32.85, 20.38, 12.99, 15.78, 39.05, 37.18, 8.56, 58.23, 64.70), "2934/15724"),
    "Place+Face+Word+Body": ((59.28, 39.66, 25.91, 16.9, 18.92, 43.52, 55.59, 11.74, 66.13, 71.86), "6706/15724"),
    "Vision+Place+Face+Word+Body": ((61.56, 42.43, 28.65, 19.58, 19.98, 45.05, 62.83, 12.83, 67.34, 73.03), "11051/15724"),
}

# The paper's claimed gains (Sec. 5.1 and 5.3, "average" over the Table 1 metrics): quoted as printed.
CLAIMED_GAINS = {
    ("OT-S1", "UMBRAE-S1"): 6.11,
    ("OT-Cross Subjects", "UMBRAE"): 3.81,
    ("OT-S1", "UMBRAE(MSE)-S1*"): 6.28,
    ("OT-Cross Subjects", "UMBRAE(MSE)*"): 4.27,
}

# Fig. 4 as the text reads it (Sec. 5.2): "the visual region has the lowest importance, whereas the
# Place region exhibits the highest importance".
FIG4_MOST_IMPORTANT = "Place"
FIG4_LEAST_IMPORTANT = "Vision"
