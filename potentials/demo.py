"""The learned-potential section of ``diffsim demo`` (see :mod:`diffsim.demo`): EMT copper data
generated into a local ase.db, an ACSF potential trained on it, its errors on held-out
structures, and MD with it against EMT (NVE drift, g(r)). Returns (results, checks)."""

from __future__ import annotations

from dataclasses import dataclass

from diffsim.demo import check

MD_TEMPERATURE = 600.0  # K: the MD runs' start (NVE) and thermostat (NVT)

# the data, model and MD of --quick and of the full run (see README "The demo")
DEMO_SIZES = {
    "quick": dict(temperatures=(300.0, 900.0), md_samples=15, rattled=8, strained=8, vacancies=8, hidden=(16, 16),
                  epochs=25, md_size=2, md_steps=300),
    "full": dict(temperatures=(300.0, 600.0, 900.0, 1200.0), md_samples=40, rattled=20, strained=20, vacancies=20,
                 hidden=(32, 32), epochs=80, md_size=3, md_steps=1000),
}


@dataclass
class _Run:
    """What the section computed: the data, the trained model and its errors, the MD comparison."""

    structures: int
    test: list
    history: object
    errors: object
    forces: tuple        # (EMT's, the model's) on the held-out structures
    spread: float        # mean |F| of the held-out EMT forces (meV/Å): a zero-force model's MAE
    model: object = None
    atoms: object = None
    md: object = None


def demo_section(report, size: str) -> tuple[dict, list]:
    """EMT copper data into a local ase.db, an ACSF potential trained on it, errors on held-out
    structures, and MD with the trained model against EMT."""
    size = DEMO_SIZES[size]
    run = _train_on_emt(report.folder, size)
    _md_against_emt(run, size)
    checks = _checks(run)
    _report(report, run, size)
    return _results(run, size), checks


def _train_on_emt(folder, size: dict) -> _Run:
    """Generate the EMT data, hold 10 % out, train the ACSF model (saved beside the report), score it."""
    import numpy as np

    from .figures import predicted_forces
    from .model import ACSFModel
    from .reference_data import generate_emt_dataset, held_out_split, load_dataset
    from .training import TrainConfig, evaluate, prepare, train

    db = folder / "emt_cu.db"
    n = generate_emt_dataset(db, "Cu", size=(2, 2, 2), temperatures=size["temperatures"],
                             md_samples=size["md_samples"], rattled=size["rattled"], strained=size["strained"],
                             vacancies=size["vacancies"], eos=0, seed=0)
    frames = load_dataset(db)
    test, training = held_out_split(frames, 0.1, minimum=2, seed=0)
    model = ACSFModel(["Cu"], hidden=size["hidden"], seed=0)
    history = train(model, training, TrainConfig(epochs=size["epochs"], batch_size=4, seed=0))
    model.save(folder / "model_cu.npz")
    errors = evaluate(model, prepare(model, test))
    f_ref, f_pred = predicted_forces(model, test)
    spread = 1000 * float(np.mean(np.abs(f_ref)))
    print(f"   {n} EMT structures; trained on {history.training_structures} (validation "
          f"{history.validation_structures}) in {history.seconds:.1f} s; held-out ({len(test)}): "
          f"energy MAE {errors.energy_mae:.2f} meV/atom, force MAE {errors.force_mae:.1f} meV/Å "
          f"(force spread {spread:.0f} meV/Å)")
    return _Run(n, test, history, errors, (f_ref, f_pred), spread, model)


def _md_against_emt(run: _Run, size: dict) -> None:
    """NVE with the model (its drift) and NVT with the model and with EMT from the same start (g(r))."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from .calculator import Calculator
    from .md import compare_with_reference

    run.atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((size["md_size"],) * 3)
    run.md = compare_with_reference(run.atoms, Calculator(run.model), EMT(), temperature_K=MD_TEMPERATURE,
                                    steps=size["md_steps"], interval=10, progress=True)
    print(f"   MD, {len(run.atoms)} atoms, {size['md_steps'] * 2.0 / 1000:g} ps: NVE drift {run.md.drift:.2g} "
          f"meV/atom/ps; g(r) against EMT's {run.md.rdf_difference:.3f} (relative L1)")


def _checks(run: _Run) -> list:
    """The truths of the section: forces learned (held-out error below the data's spread), energy
    conserved in NVE, g(r) close to EMT's at the same temperature."""
    import numpy as np

    checks: list = []
    md, errors = run.md, run.errors
    check(checks, "held-out force MAE below the data's force spread (meV/Å)", errors.force_mae,
          f"< {run.spread:.0f}", errors.force_mae < run.spread)
    check(checks, "NVE energy drift with the learned potential (meV/atom/ps)", md.drift, "|drift| < 1",
          bool(np.isfinite(md.drift)) and abs(md.drift) < 1.0)
    check(checks, "g(r) learned vs EMT, relative L1 difference", md.rdf_difference, "< 0.25",
          md.rdf_difference < 0.25)
    return checks


def _report(report, run: _Run, size: dict) -> None:
    """The section of the report: the data and training in prose, the errors' table, four figures."""
    from .figures import force_parity, learning_curve, nve_energy, radial_distribution_plot

    history, errors, md = run.history, run.errors, run.md
    ps = size["md_steps"] * 2.0 / 1000
    report.heading("3. A learned potential for copper, and MD with it")
    report.paragraph(f"Reference data generated now with ASE's EMT into `emt_cu.db` (an ase.db): {run.structures} "
                     f"structures of 32-atom fcc Cu cells (Langevin MD at "
                     f"{', '.join(f'{t:g}' for t in size['temperatures'])} K, rattled, strained, with a vacancy). A "
                     "random 10 % is held out; an ACSF model (per-element "
                     f"networks {size['hidden']} on atom-centred symmetry functions, forces −∂E/∂R by reverse mode) "
                     f"is trained on the energies and forces of {history.training_structures} of the rest "
                     f"({history.validation_structures} more choose the best epoch) with Adam for "
                     f"{len(history.train_loss)} epochs "
                     f"({history.seconds:.1f} s) and saved as `model_cu.npz`.")
    report.table(["held-out structures", "energy MAE (meV/atom)", "force MAE (meV/Å)",
                  "force spread: mean |F| (meV/Å)"],
                 [[len(run.test), f"{errors.energy_mae:.2f}", f"{errors.force_mae:.1f}", f"{run.spread:.0f}"]])
    report.figure(learning_curve(history), "learning_curve.png", "Learning curve: loss and validation errors")
    report.figure(force_parity(*run.forces, title="held-out"), "force_parity.png",
                  "Force components on the held-out structures: learned against EMT")
    report.paragraph(f"MD with the trained model through ASE: {len(run.atoms)}-atom fcc Cu, velocities drawn at "
                     f"{MD_TEMPERATURE:g} K, {size['md_steps']} steps of 2 fs ({ps:g} ps). NVE (velocity Verlet): "
                     f"energy drift {md.drift:.2g} meV/atom/ps. NVT (Langevin) with the model and with EMT from the "
                     f"same start: g(r) differs by {md.rdf_difference:.3f} (relative L1).")
    report.figure(nve_energy(md.nve), "nve_energy.png", "Total energy in NVE with the learned potential")
    report.figure(radial_distribution_plot(md.r, md.g_reference, md.g_learned, difference=md.rdf_difference),
                  "rdf.png", "Radial distribution function at the same temperature: learned potential against EMT")


def _results(run: _Run, size: dict) -> dict:
    """The numbers of the section for results.json."""
    history = run.history
    return {"structures": run.structures, "training_structures": history.training_structures,
            "validation_structures": history.validation_structures, "held_out_structures": len(run.test),
            "epochs": len(history.train_loss), "training_seconds": history.seconds,
            "energy_mae_meV_per_atom": run.errors.energy_mae, "force_mae_meV_per_A": run.errors.force_mae,
            "force_spread_meV_per_A": run.spread, "md_atoms": len(run.atoms), "md_steps": size["md_steps"],
            "nve_drift_meV_per_atom_per_ps": run.md.drift, "rdf_difference": run.md.rdf_difference}
