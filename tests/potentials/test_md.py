"""MD helpers: NVE conserves energy, g(r) and MSD of a crystal, comparison with the reference."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from potentials.calculator import Calculator
from potentials.md import compare_with_reference, mean_squared_displacement, radial_distribution, run_md
from potentials.model import ACSFModel


def crystal():
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))


def test_nve_with_emt_conserves_energy_and_gives_fcc_peaks():
    run = run_md(crystal(), EMT(), temperature_K=300, timestep_fs=2.0, steps=200, interval=10, seed=1)
    assert abs(run.drift) < 1.0  # meV/atom/ps
    r, g = radial_distribution(run, r_max=4.5)
    first = r[np.argmax(g)]
    assert first == pytest.approx(3.61 / np.sqrt(2), abs=0.1)  # nearest-neighbour distance of fcc
    msd = mean_squared_displacement(run)
    assert msd[0] == 0 and np.all(msd[1:] < 0.2)  # a solid vibrates, it does not diffuse


def test_nve_with_a_learned_model_conserves_energy(tmp_path):
    model = ACSFModel(["Cu"], hidden=(8,), seed=0)
    model.reference = {"Cu": -0.01}
    out = compare_with_reference(crystal(), Calculator(model), EMT(), temperature_K=300, steps=60, interval=10,
                                 plot=str(tmp_path / "md.png"))
    assert abs(out["drift"]) < 1.0 and (tmp_path / "md.png").exists()
    assert np.isfinite(out["rdf_difference"])


def test_bad_ensemble():
    with pytest.raises(ValueError, match="ensemble"):
        run_md(crystal(), EMT(), ensemble="npe")


def test_npt_relaxes_an_expanded_cell_towards_emts_equilibrium_volume():
    from ase.build import bulk
    from scipy.optimize import minimize_scalar

    def energy(a):
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = EMT()
        return atoms.get_potential_energy()

    v_eq = minimize_scalar(energy, bounds=(3.4, 3.8), method="bounded").x ** 3 / 4  # Å³/atom, EMT at 0 K
    atoms = bulk("Cu", "fcc", a=1.03 * (4 * v_eq) ** (1 / 3), cubic=True)  # 4 atoms: EMT rebuilds its list each step
    run = run_md(atoms, EMT(), temperature_K=50, steps=600, interval=60, ensemble="npt", seed=0)
    start, end = run.volumes[0], run.volumes[-1]
    assert abs(end - v_eq) < 0.6 * abs(start - v_eq)  # the barostat moved the volume most of the way back
