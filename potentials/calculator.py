"""An ASE calculator for diffsim potentials: energy, free_energy, forces, stress, energies.

It honours ASE's Calculator contract: ``implemented_properties``, and ``calculate(atoms,
properties, system_changes)`` recomputing only when the atoms changed (the base class compares
them), so ase.md, ase.optimize and ase.io.Trajectory work unchanged. Stress is in eV/Å³, Voigt
order (xx, yy, zz, yz, xz, xy), available for fully periodic cells.

>>> from ase.build import bulk
>>> from potentials.model import ACSFModel
>>> atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
>>> atoms.calc = Calculator(ACSFModel(["Cu"], hidden=(4,)))
>>> atoms.get_forces().shape
(4, 3)
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from .neighbors import VerletList


class Calculator(_ASECalculator):
    """ASE calculator around a diffsim potential (any ``potentials.model.Potential``: ACSF or PaiNN)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model, skin: float = 0.3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.neighbors = VerletList(model.cutoff, skin)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pos, cell, pbc, numbers = atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a fully periodic cell (pbc = True in every direction)")
        if atoms.pbc.any() and abs(np.linalg.det(cell)) < 1e-12:
            raise ValueError("the cell has zero volume under periodic boundary conditions: set a cell")
        pairs = self.neighbors.pairs(pos, cell, pbc)
        top = self.model.topology(pos, cell, pbc, numbers, pairs=pairs)
        energy, forces, sigma = self.model.energy_forces(pos, cell, pbc, numbers, topology=top, stress=want_stress)
        self.results["energy"] = self.results["free_energy"] = energy
        self.results["forces"] = forces
        if "energies" in properties:
            self.results["energies"] = self.model.per_atom_energies(pos, cell, pbc, numbers, topology=top)
        if want_stress:
            self.results["stress"] = sigma[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
