"""An ASE calculator for diffsim potentials and committees: energy, free_energy, forces,
stress, energies, stresses, and for a committee its spread.

It honours ASE's Calculator contract: ``implemented_properties``, and ``calculate(atoms,
properties, system_changes)`` recomputing only when the atoms changed (the base class compares
them), so ase.md, ase.optimize and ase.io.Trajectory work unchanged. Stress is in eV/Å³, Voigt
order (xx, yy, zz, yz, xz, xy) by ASE's own helpers, for any cell with a volume: fully periodic,
or a slab or wire (mixed periodicity) by the virial over the cell volume, as ASE's EMT does.
``stresses`` are per-atom stresses (N, 6) that sum to the stress. With a
:class:`~potentials.committee.Committee`, ``results`` also hold ``energy_std`` (eV) and
``forces_std`` (N,), eV/Å: the committee's spread.

>>> from ase.build import bulk
>>> from potentials.model import ACSFModel
>>> atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
>>> atoms.calc = Calculator(ACSFModel(["Cu"], hidden=(4,)))
>>> atoms.get_forces().shape, atoms.get_stresses().shape
((4, 3), (4, 6))
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .neighbors import VerletList


class Calculator(_ASECalculator):
    """ASE calculator around a diffsim potential (``potentials.model.Potential``: ACSF or PaiNN)
    or a committee of them."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies", "stresses"]

    def __init__(self, model, skin: float = 0.3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.neighbors = VerletList(model.cutoff, skin)

    @property
    def is_committee(self) -> bool:
        return hasattr(self.model, "members")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pos, cell, pbc, numbers = atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers
        want_stress = "stress" in properties or "stresses" in properties
        has_volume = abs(np.linalg.det(cell)) > 1e-12
        if want_stress and not has_volume:
            raise PropertyNotImplementedError("stress needs a cell with a volume (three independent cell "
                                              "vectors); set one, e.g. atoms.center(vacuum=5)")
        if atoms.pbc.any() and not has_volume:
            raise ValueError("the cell has zero volume under periodic boundary conditions: set a cell")
        pairs = self.neighbors.pairs(pos, cell, pbc)
        top = self.model.topology(pos, cell, pbc, numbers, pairs=pairs)
        if self.is_committee:
            p = self.model.predict(pos, cell, pbc, numbers, topology=top, stress=want_stress,
                                   energies="energies" in properties)
            energy, forces, sigma = p["energy"], p["forces"], p.get("stress")
            self.results["energy_std"], self.results["forces_std"] = p["energy_std"], p["forces_std"]
            if want_stress:
                self.results["stress_std"] = full_3x3_to_voigt_6_stress(p["stress_std"])
            if "energies" in properties:
                self.results["energies"] = p["energies"]
        else:
            energy, forces, sigma = self.model.energy_forces(pos, cell, pbc, numbers, topology=top, stress=want_stress)
            if "energies" in properties:
                self.results["energies"] = self.model.per_atom_energies(pos, cell, pbc, numbers, topology=top)
        self.results["energy"] = self.results["free_energy"] = energy
        self.results["forces"] = forces
        if want_stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(sigma)
        if "stresses" in properties:
            self.results["stresses"] = full_3x3_to_voigt_6_stress(
                self.model.stresses(pos, cell, pbc, numbers, topology=top))
