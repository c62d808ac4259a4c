"""otnsd: partial optimal transport for brain-to-image alignment on NSD.

Modules: :mod:`otnsd.ot` (partial-OT, MSE and InfoNCE losses), :mod:`otnsd.data` (the dataset API,
the simulated NSD default), :mod:`otnsd.plots` (figure style and saving), :mod:`otnsd.paths`
(where data, runs and figures live).
"""

__version__ = "0.1.0"
