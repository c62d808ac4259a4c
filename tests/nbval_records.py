"""pytest plugin (loaded by pyproject.toml's addopts): the records check inside nbval's run.

After nbval executes a notebook cell, the records the cell produced are compared with the ones
stored in it, within their kind's tolerance (``notebook_tolerances.py``); nbval itself skips the
outputs of cells tagged ``nbval-ignore-output``, where the records live. A plugin rather than
``tests/conftest.py``: a conftest's hooks reach only the items under its folder, and the
notebooks are under ``notebooks/``.
"""

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    stored, fresh = getattr(getattr(item, "cell", None), "outputs", None), getattr(item, "test_outputs", None)
    if stored is not None and fresh is not None:
        from notebook_tolerances import check_cell_records

        problems = check_cell_records(stored, fresh)
        if problems:
            raise AssertionError(f"{len(problems)} record(s) of this cell left their tolerance:\n" + "\n".join(problems))
    return result
