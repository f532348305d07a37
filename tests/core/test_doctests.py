"""The docstring examples of the drift modules run (CI runs pytest without --doctest-modules)."""

import doctest
import importlib

import pytest

MODULES = ("monitor.core.calibration", "monitor.core.multivariate", "monitor.core.binning", "monitor.core.reference",
           "monitor.core.drift.chi2", "monitor.core.drift.js", "monitor.core.drift.ks", "monitor.core.drift.psi",
           "monitor.core.drift.wasserstein", "monitor.core.drift.multitest")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
