"""A deliberately broken partial-OT loss, loaded into every Python process started with this folder
on PYTHONPATH (the notebook kernel included): the mass ratio λ is ignored (always 1).

tests/test_notebook_records.py runs a notebook with it to show that the notebook regression
fails when the loss is wrong."""

import otnsd.ot as _ot
import otnsd.ot.losses as _losses

_solve = _ot.partial_plan


def _plan_ignoring_lam(C, lam, **kwargs):
    return _solve(C, 1.0, **kwargs)


# where partial_ot_loss looks the solver up, and where the notebooks import it from
_ot.partial_plan = _losses.partial_plan = _plan_ignoring_lam
