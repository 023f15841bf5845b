"""Physical validation of a potential beside a reference calculator: for each element (fcc),
the lattice constant and bulk modulus from an equation of state, the cubic elastic constants
C11, C12, C44 from stress-strain, the vacancy formation energy and the (111) and (100) surface
energies, each relaxed.

- Lattice constant a0 and bulk modulus B: Birch-Murnaghan fit (``ase.eos``) of E(V) for the
  4-atom cubic cell at 9 volumes within ±3 %, twice (the second around the first's minimum).
- C11, C12: σ_xx and σ_yy for ε_xx = ±δ; C44: σ_yz for ε_yz = ε_zy = ±δ/2 (engineering shear
  δ), central differences, δ = 0.5 %, at a0 (no internal relaxation in a monatomic fcc lattice).
- Vacancy: E_f = E(N−1, relaxed) − (N−1)/N E(N), N = 108 (3x3x3 cubic cells), cell fixed.
- Surface energy: γ = (E_slab − n e_bulk) / 2A for a 6-layer slab (12 Å vacuum, periodic in
  the plane), relaxed, in J/m².

The model and the reference are anything :func:`calculator_factory` accepts: a diffsim potential
or committee, an ASE calculator (instance or class), "emt", or a dotted name
("ase.calculators.emt.EMT").

>>> props = crystal_properties(calculator_factory("emt"), "Cu", relax=False, surfaces=False)
>>> round(props["lattice_constant"], 3), 130 < props["bulk_modulus"] < 140
(3.59, True)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from diffsim.errors import DiffsimError

PROPERTIES = {  # name: (label, unit)
    "lattice_constant": ("lattice constant a0", "Å"),
    "bulk_modulus": ("bulk modulus B (EOS)", "GPa"),
    "c11": ("C11", "GPa"),
    "c12": ("C12", "GPa"),
    "c44": ("C44", "GPa"),
    "vacancy_energy": ("vacancy formation energy", "eV"),
    "surface_111": ("surface energy (111)", "J/m²"),
    "surface_100": ("surface energy (100)", "J/m²"),
}
J_PER_M2 = 16.021766208  # 1 eV/Å² in J/m²


class ValidationError(DiffsimError, ValueError):
    """A calculator that cannot be built, or an element the validation cannot treat."""


def calculator_factory(spec):
    """A function returning a fresh ASE calculator for ``spec``: a diffsim potential or
    committee (a model file path too), an ASE calculator instance or class, "emt", or an
    importable dotted name such as "ase.calculators.emt.EMT" (called without arguments).

    >>> type(calculator_factory("emt")()).__name__
    'EMT'
    """
    from .calculator import Calculator

    if callable(getattr(spec, "get_potential_energy", None)) or hasattr(spec, "calculate"):
        return lambda: spec
    if hasattr(spec, "atom_energies") or hasattr(spec, "members"):
        return lambda: Calculator(spec)
    if isinstance(spec, type):
        return spec
    if isinstance(spec, str):
        if spec.lower() == "emt":
            from ase.calculators.emt import EMT

            return EMT
        if spec.endswith(".npz"):
            from .model import load_model

            model = load_model(spec)
            return lambda: Calculator(model)
        module, _, name = spec.replace(":", ".").rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValidationError(f"cannot import the calculator {spec!r} ({exc}); give 'emt', a model file "
                                  "(.npz) or a dotted name such as ase.calculators.emt.EMT") from None
        return cls
    raise ValidationError(f"cannot make a calculator of {type(spec).__name__}: give a model, an ASE calculator "
                          "or its name")


def _energy(atoms, factory):
    atoms.calc = factory()
    return float(atoms.get_potential_energy())


def _relax(atoms, factory, fmax: float, steps: int):
    from ase.optimize import BFGS

    atoms.calc = factory()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    return float(atoms.get_potential_energy())


def equation_of_state(factory, element: str, a_guess: float, span: float = 0.03, points: int = 9):
    """(a0 Å, B GPa, E0 per atom eV, volumes per atom, energies per atom) of the fcc crystal."""
    from ase.build import bulk
    from ase.eos import EquationOfState
    from ase.units import GPa

    a = a_guess
    for _ in range(2):
        scales = np.linspace(1 - span, 1 + span, points) ** (1 / 3)
        vols, ens = [], []
        for s in scales:
            atoms = bulk(element, "fcc", a=a * s, cubic=True)
            vols.append(atoms.get_volume() / len(atoms))
            ens.append(_energy(atoms, factory) / len(atoms))
        v0, e0, B = _fit_eos(vols, ens, EquationOfState, element, a)
        a = (4 * v0) ** (1 / 3)
    return a, B / GPa, e0, np.array(vols), np.array(ens)


def _fit_eos(vols, ens, EquationOfState, element, a):
    """Birch-Murnaghan (v0, e0, B); a cubic in V where that fit fails; an error if E(V) has no
    minimum near the points."""
    try:
        v0, e0, B = EquationOfState(vols, ens, eos="birchmurnaghan").fit()
        if np.isfinite(B) and B > 0 and min(vols) * 0.9 < v0 < max(vols) * 1.1:
            return v0, e0, B
    except (RuntimeError, ValueError):
        pass
    c = np.polyfit(vols, ens, 3)
    curvature = np.polyder(c, 2)
    roots = [r.real for r in np.roots(np.polyder(c)) if abs(r.imag) < 1e-12 and np.polyval(curvature, r.real) > 0]
    roots = [r for r in roots if min(vols) * 0.9 < r < max(vols) * 1.1]
    if not roots:
        raise ValidationError(f"{element}: the energy-volume curve has no minimum near a = {a:.3f} Å (volumes "
                              f"{min(vols):.2f}-{max(vols):.2f} Å³/atom); the model does not describe the crystal")
    v0 = roots[0]
    return v0, float(np.polyval(c, v0)), float(v0 * np.polyval(np.polyder(c, 2), v0))


def elastic_constants(factory, element: str, a0: float, delta: float = 0.005) -> dict:
    """C11, C12, C44 (GPa) of the fcc crystal at lattice constant ``a0`` from stress-strain."""
    from ase.build import bulk
    from ase.units import GPa

    def stress(eps):
        atoms = bulk(element, "fcc", a=a0, cubic=True)
        atoms.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
        atoms.calc = factory()
        return atoms.get_stress(voigt=False)

    normal, shear = np.zeros((3, 3)), np.zeros((3, 3))
    normal[0, 0] = delta
    shear[1, 2] = shear[2, 1] = delta / 2
    dn = (stress(normal) - stress(-normal)) / (2 * delta)
    ds = (stress(shear) - stress(-shear)) / (2 * delta)
    return {"c11": dn[0, 0] / GPa, "c12": dn[1, 1] / GPa, "c44": ds[1, 2] / GPa}


def vacancy_energy(factory, element: str, a0: float, repeat: int = 3, relax: bool = True,
                   fmax: float = 0.01) -> float:
    """Vacancy formation energy (eV) in a repeat³ cubic supercell, positions relaxed."""
    from ase.build import bulk

    atoms = bulk(element, "fcc", a=a0, cubic=True).repeat(repeat)
    n = len(atoms)
    e_bulk = _energy(atoms.copy(), factory)
    del atoms[0]
    e_vac = _relax(atoms, factory, fmax, 200) if relax else _energy(atoms, factory)
    return e_vac - (n - 1) / n * e_bulk


def surface_energy(factory, element: str, a0: float, facet: str = "111", layers: int = 6, relax: bool = True,
                   fmax: float = 0.01) -> float:
    """Surface energy (J/m²) of an fcc (111) or (100) slab, relaxed."""
    from ase.build import bulk, fcc100, fcc111

    make = {"111": fcc111, "100": fcc100}[facet]
    slab = make(element, size=(1, 1, layers), a=a0, vacuum=6.0, periodic=False)
    slab.pbc = (True, True, False)
    crystal = bulk(element, "fcc", a=a0, cubic=True)
    e_bulk = _energy(crystal, factory) / len(crystal)
    e_slab = _relax(slab, factory, fmax, 200) if relax else _energy(slab, factory)
    area = float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))
    return (e_slab - len(slab) * e_bulk) / (2 * area) * J_PER_M2


def crystal_properties(factory, element: str, a_guess: float | None = None, relax: bool = True,
                       surfaces: bool = True) -> dict:
    """Every property of :data:`PROPERTIES` (those it computes) for the fcc ``element``, plus
    the EOS points ("eos_volumes", "eos_energies") and "e0" (eV/atom)."""
    from ase.data import atomic_numbers, reference_states

    if element not in atomic_numbers:
        raise ValidationError(f"unknown element {element!r}")
    if a_guess is None:
        state = reference_states[atomic_numbers[element]] or {}
        if state.get("symmetry") != "fcc":
            raise ValidationError(f"{element} is not fcc in ASE's reference states; give a_guess (the validation "
                                  "treats fcc crystals)")
        a_guess = state["a"]
    a0, B, e0, vols, ens = equation_of_state(factory, element, a_guess)
    out = {"lattice_constant": a0, "bulk_modulus": B, "e0": e0}
    out.update(elastic_constants(factory, element, a0))
    out["vacancy_energy"] = vacancy_energy(factory, element, a0, relax=relax)
    if surfaces:
        for facet in ("111", "100"):
            out[f"surface_{facet}"] = surface_energy(factory, element, a0, facet, relax=relax)
    out = {k: float(v) for k, v in out.items()}
    out.update(eos_volumes=vols, eos_energies=ens)
    return out


@dataclass
class Validation:
    """Properties of the model and the reference for each element; ``table()`` and ``plot()``."""

    elements: list
    model: dict = field(default_factory=dict)       # element -> properties
    reference: dict = field(default_factory=dict)

    def rows(self) -> list[list]:
        """[element, property, unit, model, reference, model − reference, relative %]."""
        out = []
        for el in self.elements:
            for key, (label, unit) in PROPERTIES.items():
                if key not in self.model[el]:
                    continue
                m, r = self.model[el][key], self.reference[el][key]
                out.append([el, label, unit, m, r, m - r, 100 * (m - r) / r if r else float("nan")])
        return out

    def table(self) -> str:
        head = ["element", "property", "unit", "model", "reference", "difference", "relative"]
        body = [[e, p, u, f"{m:.4g}", f"{r:.4g}", f"{d:+.3g}", f"{rel:+.1f} %"]
                for e, p, u, m, r, d, rel in self.rows()]
        widths = [max(len(h), *(len(b[k]) for b in body)) for k, h in enumerate(head)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.ljust(w) if k < 3 else c.rjust(w) for k, (c, w) in enumerate(zip(b, widths)))
                  for b in body]
        return "\n".join(lines)

    def plot(self, path: str | None = None):
        """E(V) of model and reference per element, and the relative difference of each property."""
        from .figures import _finish, _plt

        plt = _plt(path)
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for el in self.elements:
            for props, style, who in ((self.reference[el], "-", "reference"), (self.model[el], "o", "model")):
                ax[0].plot(props["eos_volumes"], props["eos_energies"], style, label=f"{el} {who}")
        ax[0].set_xlabel("volume per atom (Å³)")
        ax[0].set_ylabel("energy per atom (eV)")
        ax[0].set_title("equation of state")
        ax[0].legend(fontsize=8)
        rows = self.rows()
        ax[1].barh([f"{r[0]} {r[1]}" for r in rows], [r[6] for r in rows], color="tab:blue")
        ax[1].axvline(0, color="k", lw=0.8)
        ax[1].set_xlabel("model − reference (%)")
        ax[1].invert_yaxis()
        fig.tight_layout()
        return _finish(fig, path)


def validate(model, reference="emt", elements=None, relax: bool = True, surfaces: bool = True) -> Validation:
    """The properties of :data:`PROPERTIES` for ``model`` and ``reference``, side by side, for
    each of ``elements`` (default: the model's elements, when it has them)."""
    if elements is None:
        elements = list(getattr(model, "symbols", []))
        if not elements:
            raise ValidationError("give the elements to validate (the model does not say which it covers)")
    result = Validation(list(elements))
    fm, fr = calculator_factory(model), calculator_factory(reference)
    for el in result.elements:
        result.reference[el] = crystal_properties(fr, el, relax=relax, surfaces=surfaces)
        a_guess = result.reference[el]["lattice_constant"]
        result.model[el] = crystal_properties(fm, el, a_guess=a_guess, relax=relax, surfaces=surfaces)
    return result
