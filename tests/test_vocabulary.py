"""One vocabulary across the applications: every public exception of trajectories and potentials
is a DiffsimError, a user's typo in a solver name raises, results share field names, and the
MD results that used to be dicts are dataclasses that still read like them."""

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

from diffsim import DiffsimError


def _modules(package):
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "__main__":  # importing it runs the CLI
            yield importlib.import_module(f"{package}.{info.name}")


# Numba's cache loader treats an OSError as a missing entry: this one never reaches a user.
INTERNAL = {"diffsim.kernel_cache.DamagedCacheEntry"}


@pytest.mark.parametrize("package", ["diffsim", "trajectories", "potentials"])
def test_every_public_exception_is_a_diffsim_error(package):
    found = []
    for module in _modules(package):
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and not issubclass(obj, Warning)
                    and obj.__module__ == module.__name__ and not name.startswith("_")
                    and f"{module.__name__}.{name}" not in INTERNAL):
                found.append(obj)
                assert issubclass(obj, DiffsimError), f"{module.__name__}.{name} is not a DiffsimError"
    assert found  # the scan saw the package's exceptions


def test_an_unknown_solver_method_is_a_problem_error():
    from trajectories import SYSTEMS, solve
    from trajectories.problem import ProblemError

    with pytest.raises(ProblemError, match="unknown method 'multipel'"):
        solve(SYSTEMS["van_der_pol"](N=10), method="multipel")


def test_results_that_were_dicts_read_like_dicts():
    from potentials.md import MDComparison, MDRun

    run = MDRun(times=np.arange(3.0), potential=np.zeros(3), kinetic=np.zeros(3))
    out = MDComparison(r=np.ones(2), g_learned=np.ones(2), g_reference=np.ones(2), rdf_difference=0.1,
                       msd_learned=np.zeros(3), msd_reference=np.zeros(3), times=run.times, drift=0.2, nve=run)
    assert out["drift"] == 0.2 and "r" in out and out.get("missing", 7) == 7
    with pytest.raises(KeyError):
        out["missing"]
