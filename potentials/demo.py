"""The learned-potential section of ``diffsim demo`` (see :mod:`diffsim.demo`): EMT copper data
generated into a local ase.db, an ACSF potential trained on it, its errors on held-out
structures, and MD with it against EMT (NVE drift, g(r)). Returns (results, checks)."""

from __future__ import annotations

from diffsim.demo import check

# the data, model and MD of --quick and of the full run (see README "The demo")
DEMO_SIZES = {
    "quick": dict(temperatures=(300.0, 900.0), md_samples=15, rattled=8, strained=8, vacancies=8, hidden=(16, 16),
                  epochs=25, md_size=2, md_steps=300),
    "full": dict(temperatures=(300.0, 600.0, 900.0, 1200.0), md_samples=40, rattled=20, strained=20, vacancies=20,
                 hidden=(32, 32), epochs=80, md_size=3, md_steps=1000),
}


def demo_section(report, size: str) -> tuple[dict, list]:
    """EMT copper data into a local ase.db, an ACSF potential trained on it, errors on held-out
    structures, and MD with the trained model against EMT."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from .calculator import Calculator
    from .figures import force_parity, learning_curve, nve_energy, predicted_forces, radial_distribution_plot
    from .md import compare_with_reference
    from .model import ACSFModel
    from .reference_data import generate_emt_dataset, held_out_split, load_dataset
    from .training import TrainConfig, evaluate, prepare, train

    size, checks, folder = DEMO_SIZES[size], [], report.folder
    db = folder / "emt_cu.db"
    n = generate_emt_dataset(db, "Cu", size=(2, 2, 2), temperatures=size["temperatures"],
                             md_samples=size["md_samples"], rattled=size["rattled"], strained=size["strained"],
                             vacancies=size["vacancies"], seed=0)
    frames = load_dataset(db)
    test, training = held_out_split(frames, 0.1, minimum=2, seed=0)
    n_test = len(test)
    model = ACSFModel(["Cu"], hidden=size["hidden"], seed=0)
    history = train(model, training, TrainConfig(epochs=size["epochs"], batch_size=4, seed=0))
    model.save(folder / "model_cu.npz")
    errors = evaluate(model, prepare(model, test))
    f_ref, f_pred = predicted_forces(model, test)
    spread = 1000 * float(np.mean(np.abs(f_ref)))
    print(f"   {n} EMT structures; trained on {history.training_structures} (validation "
          f"{history.validation_structures}) in {history.seconds:.1f} s; held-out ({n_test}): "
          f"energy MAE {errors.energy_mae:.2f} meV/atom, force MAE {errors.force_mae:.1f} meV/Å "
          f"(force spread {spread:.0f} meV/Å)")
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((size["md_size"],) * 3)
    temperature = 600.0
    md = compare_with_reference(atoms, Calculator(model), EMT(), temperature_K=temperature, steps=size["md_steps"],
                                interval=10, progress=True)
    ps = size["md_steps"] * 2.0 / 1000
    print(f"   MD, {len(atoms)} atoms, {ps:g} ps: NVE drift {md['drift']:.2g} meV/atom/ps; g(r) against EMT's "
          f"{md['rdf_difference']:.3f} (relative L1)")
    check(checks, "held-out force MAE below the data's force spread (meV/Å)", errors.force_mae,
          f"< {spread:.0f}", errors.force_mae < spread)
    check(checks, "NVE energy drift with the learned potential (meV/atom/ps)", md["drift"], "|drift| < 1",
          bool(np.isfinite(md["drift"])) and abs(md["drift"]) < 1.0)
    check(checks, "g(r) learned vs EMT, relative L1 difference", md["rdf_difference"], "< 0.25",
          md["rdf_difference"] < 0.25)

    report.heading("3. A learned potential for copper, and MD with it")
    report.paragraph(f"Reference data generated now with ASE's EMT into `emt_cu.db` (an ase.db): {n} structures of "
                     f"32-atom fcc Cu cells (Langevin MD at {', '.join(f'{t:g}' for t in size['temperatures'])} K, "
                     "rattled, strained, with a vacancy). A random 10 % is held out; an ACSF model (per-element "
                     f"networks {size['hidden']} on atom-centred symmetry functions, forces −∂E/∂R by reverse mode) "
                     f"is trained on the energies and forces of {history.training_structures} of the rest "
                     f"({history.validation_structures} more choose the best epoch) with Adam for "
                     f"{len(history.train_loss)} epochs "
                     f"({history.seconds:.1f} s) and saved as `model_cu.npz`.")
    report.table(["held-out structures", "energy MAE (meV/atom)", "force MAE (meV/Å)",
                  "force spread: mean |F| (meV/Å)"],
                 [[n_test, f"{errors.energy_mae:.2f}", f"{errors.force_mae:.1f}", f"{spread:.0f}"]])
    report.figure(learning_curve(history), "learning_curve.png", "Learning curve: loss and validation errors")
    report.figure(force_parity(f_ref, f_pred, title="held-out"), "force_parity.png",
                  "Force components on the held-out structures: learned against EMT")
    report.paragraph(f"MD with the trained model through ASE: {len(atoms)}-atom fcc Cu, velocities drawn at "
                     f"{temperature:g} K, {size['md_steps']} steps of 2 fs ({ps:g} ps). NVE (velocity Verlet): energy "
                     f"drift {md['drift']:.2g} meV/atom/ps. NVT (Langevin) with the model and with EMT from the same "
                     f"start: g(r) differs by {md['rdf_difference']:.3f} (relative L1).")
    report.figure(nve_energy(md["nve"]), "nve_energy.png", "Total energy in NVE with the learned potential")
    report.figure(radial_distribution_plot(md["r"], md["g_reference"], md["g_learned"],
                                           difference=md["rdf_difference"]), "rdf.png",
                  "Radial distribution function at the same temperature: learned potential against EMT")
    results = {"structures": n, "training_structures": history.training_structures,
               "validation_structures": history.validation_structures, "held_out_structures": n_test,
               "epochs": len(history.train_loss), "training_seconds": history.seconds,
               "energy_mae_meV_per_atom": errors.energy_mae, "force_mae_meV_per_A": errors.force_mae,
               "force_spread_meV_per_A": spread, "md_atoms": len(atoms), "md_steps": size["md_steps"],
               "nve_drift_meV_per_atom_per_ps": md["drift"], "rdf_difference": md["rdf_difference"]}
    return results, checks
