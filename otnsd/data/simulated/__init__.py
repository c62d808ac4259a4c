r"""The simulated NSD: a deterministic stand-in for NSD, CLIP and COCO captions, with known truth.

Nothing here is real data. The simulator exists so that every notebook runs on a laptop with no
download, and so that every analysis can be checked against a ground truth that real NSD does not
have. Everything computed on it is labelled "simulated".

Generative model
----------------
**Scenes.** Each image is a scene drawn from semantic factors:

* ``place`` — one of 8 place categories (kitchen, street, beach, ...), every scene has one;
* ``objects`` — one or two of 12 object kinds (dog, car, pizza, ...) with counts 1-3, drawn
  mostly from objects typical of the place, and the ``color`` of the main object;
* ``people`` — 0-3 people and, when present, their ``action`` (standing, riding, ...);
* ``faces`` — how many of the people show their face;
* ``text`` — whether the scene holds text, and of what kind (stop sign, book, ...);
* ``lowlevel`` — 16 image-specific low-level features (contrast, orientation energy, ...) with
  no semantic content.

**Captions.** Five COCO-style captions per scene from varied templates and synonyms; each
mentions a random subset of the scene's facts, as COCO annotators do.

**Image embedding (the CLIP stand-in).** The factors are coded numerically (one-hot places,
object counts, ...), standardised, weighted by how much each matters to the embedding
(place 1.8, objects 1.1, people 1.0, text 0.9, faces 0.8, action 0.7, color 0.4, lowlevel 0.35)
and passed through a fixed random two-layer tanh network to T x D tokens. Image-specific detail
that no brain region encodes is added (``detail_noise``). A matching "text encoder" parses a
caption back into the same factor code (low-level features unknown, unmentioned factors at their
mean) and passes it through the same network, mean-pooled over tokens; the cosine between the
pooled image embedding and a caption's embedding plays CLIP-S's part.

**Patch-like tokens** (``token_layout="patches"``, off by default). Objects, faces and text each
become one token (a random tanh network of the factor's code) at a random slot per image, three
more slots per image hold detail that no region encodes, and the network above, fed the other
factors, fills the remaining slots. The brain's codes do not change: it encodes what, not where.

**Voxels.** Each region encodes a code built from some factors (``GroundTruth.region_factors``):

=======  ==============================================================
Vision   low-level features, the synergy mask ``u``, a little color
Place    place category
Face     faces, and whether people are present
Body     people count and presence, action + ``u`` (synergy with Vision)
Word     text presence and kind
Other    objects, and place (weaker)
=======  ==============================================================

*Redundancy*: people presence is encoded by Face and Body; place by Place and Other.
*Synergy*: the people's action reaches the brain only as ``action + u`` in Body, where ``u`` is a
per-image random mask (variance 4) that Vision encodes: either region alone carries little linear
information on the action (R^2 = 0.2 for Body), the two together carry all of it.

Each voxel responds to a random mixture of its region's code with a random gain; a trial's
response adds trial-to-trial noise in code space (``code_noise``, shared by the region's voxels,
so it cannot be averaged away over voxels) and independent voxel noise (``voxel_noise``). Every
image is shown ``n_repeats`` times; training rows keep the repeats apart, test rows average them.

**Subjects.** Subjects 1, 2, 5, 7 with NSD's nsdgeneral voxel counts times ``voxel_scale``;
subject 1's areas in the proportions of the paper's Table 2, the other subjects' jittered around
them. Each subject sees its own training images and the shared test images, with voxels tuned
differently (its own mixing weights) and in its own random voxel order.

**Ground truth.** :attr:`SimulatedNSD.ground_truth` says what each region encodes, which factors are
redundant or synergistic, and the true importance of each region: the Shapley value of the
variance of the image embedding that the regions' noiseless codes explain linearly.

Modules
-------
:mod:`.dataset`
    :class:`SimulatedNSD`, :class:`SimConfig`, :class:`GroundTruth`: the brain and the embedding.
:mod:`.scenes`
    The scenes' vocabulary, sampling and factor code.
:mod:`.grammar`
    The caption grammar and the caption parser.
"""

from .dataset import BLOCK_DIM_OF_REGION, DIFFICULTIES, GroundTruth, SimConfig, SimulatedNSD
from .scenes import ACTIONS, BLOCKS, COLORS, EMBEDDING_WEIGHTS, OBJECTS, PLACES, TEXTS

__all__ = [
    "SimulatedNSD",
    "SimConfig",
    "DIFFICULTIES",
    "GroundTruth",
    "PLACES",
    "OBJECTS",
    "COLORS",
    "ACTIONS",
    "TEXTS",
    "BLOCKS",
    "EMBEDDING_WEIGHTS",
    "BLOCK_DIM_OF_REGION",
]
