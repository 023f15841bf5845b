"""Physical validation: with EMT itself as the model (a calculator wrapper) it reproduces EMT's
numbers, and those numbers are checked by independent routes (zero stress at a0, B from the
elastic constants, energy-strain curvature, a different optimizer for the vacancy, the slab
energy by hand)."""

import numpy as np
import pytest
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.optimize import FIRE
from ase.units import GPa

from diffsim.cli import main
from potentials.validation import (
    J_PER_M2,
    ValidationError,
    calculator_factory,
    crystal_properties,
    validate,
)


class WrappedEMT(EMT):
    """EMT presented as 'the model': any ASE calculator can be validated."""


@pytest.fixture(scope="module")
def emt_validation():
    return validate(WrappedEMT(), "emt", elements=["Cu"])


def test_emt_as_the_model_reproduces_emt(emt_validation):
    rows = emt_validation.rows()
    assert len(rows) == 8
    for _el, prop, _unit, model, ref, diff, _rel in rows:
        assert abs(diff) <= 1e-6 * max(1.0, abs(ref)), (prop, model, ref)


def test_emt_numbers_by_independent_routes(emt_validation):
    p = emt_validation.reference["Cu"]
    a0 = p["lattice_constant"]
    atoms = bulk("Cu", "fcc", a=a0, cubic=True)
    atoms.calc = EMT()
    assert np.abs(atoms.get_stress()).max() / GPa < 0.05  # the EOS minimum is where the pressure vanishes
    assert p["bulk_modulus"] == pytest.approx((p["c11"] + 2 * p["c12"]) / 3, rel=0.01)

    def energy(eps):
        a = bulk("Cu", "fcc", a=a0, cubic=True)
        a.set_cell(a.cell @ (np.eye(3) + eps), scale_atoms=True)
        a.calc = EMT()
        return a.get_potential_energy(), a.get_volume()

    x = np.linspace(-0.006, 0.006, 7)
    for key, make, factor in (("c11", lambda d: np.diag([d, 0, 0]), 1.0),
                              ("c44", lambda d: np.array([[0, 0, 0], [0, 0, d / 2], [0, d / 2, 0]]), 1.0)):
        e = [energy(make(d))[0] for d in x]
        V = energy(np.zeros((3, 3)))[1]
        curvature = 2 * np.polyfit(x, e, 4)[-3] / V / GPa  # E = V C ε²/2 (C11) or V C44 γ²/2
        assert curvature * factor == pytest.approx(p[key], rel=0.01), key

    crystal = bulk("Cu", "fcc", a=a0, cubic=True).repeat(3)
    crystal.calc = EMT()
    e_bulk = crystal.get_potential_energy()
    del crystal[5]
    crystal.calc = EMT()
    FIRE(crystal, logfile=None).run(fmax=0.005, steps=500)
    e_vac = crystal.get_potential_energy() - 107 / 108 * e_bulk
    assert p["vacancy_energy"] == pytest.approx(e_vac, abs=0.005)

    slab = fcc111("Cu", size=(1, 1, 6), a=a0, vacuum=6.0)
    slab.calc = EMT()
    unrelaxed = (slab.get_potential_energy() - 6 * p["e0"]) / (2 * slab.cell.area(2)) * J_PER_M2
    assert 0 < unrelaxed - p["surface_111"] < 0.05  # relaxation lowers it, a little


def test_cli_validate_and_bad_names(tmp_path, capsys):
    assert main(["potential", "validate", "emt", "--reference", "ase.calculators.emt.EMT", "--elements", "Cu",
                 "--no-surfaces", "--no-relax", "--plot", str(tmp_path / "v.png")]) == 0
    out = capsys.readouterr().out
    assert "bulk modulus" in out and "+0 %" in out.replace("+0.0 %", "+0 %")
    assert (tmp_path / "v.png").stat().st_size > 0
    with pytest.raises(ValidationError, match="cannot import the calculator 'nowhere.Calc'"):
        calculator_factory("nowhere.Calc")
    with pytest.raises(ValidationError, match="not fcc"):
        crystal_properties(calculator_factory("emt"), "Fe")
