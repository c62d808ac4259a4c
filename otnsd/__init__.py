"""otnsd: partial optimal transport for brain-to-image alignment on NSD.

Modules: :mod:`otnsd.ot` (partial-OT plans and loss, MSE, InfoNCE, the loss registry),
:mod:`otnsd.data` (one dataset API: the simulated NSD default and real NSD), :mod:`otnsd.model`
(the brain encoder), :mod:`otnsd.train` (the training configuration and loop; the run cache in
:mod:`otnsd.runs`), :mod:`otnsd.caption` and :mod:`otnsd.metrics` (captioning and evaluation),
:mod:`otnsd.analysis` (the analyses, by topic), :mod:`otnsd.experiments` (what the notebooks run),
:mod:`otnsd.plots` (figure style and saving), :mod:`otnsd.paths` (where data, runs and figures live).
"""

__version__ = "0.1.0"
