"""Two learned copper potentials from the same EMT data: per-element networks on symmetry
functions (ACSFModel) and an equivariant message-passing network (PaiNNModel). Both are trained
on energies and forces, scored on held-out configurations, and run in NVE molecular dynamics
through ASE; the figure shows both force parity plots and both energy traces.

    python examples/copper_potentials.py [--quick] [--out DIR]
"""

import argparse
import pathlib
import tempfile

import numpy as np
from ase.build import bulk

from potentials.acsf import ACSFModel
from potentials.calculator import Calculator
from potentials.figures import force_parity, nve_energy, predicted_forces
from potentials.md import run_md
from potentials.painn import PaiNNModel
from potentials.reference_data import generate_emt_dataset, held_out_split, load_dataset
from potentials.training import TrainConfig, evaluate, prepare, train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small dataset and a short training")
    parser.add_argument("--out", default=".", help="folder for the figure")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        db = pathlib.Path(tmp) / "cu.db"
        generate_emt_dataset(db, "Cu", size=(2, 2, 2), temperatures=(300, 900) if args.quick else (300, 600, 900),
                             md_samples=10 if args.quick else 60, rattled=5 if args.quick else 30,
                             strained=5 if args.quick else 30, vacancies=5 if args.quick else 30)
        frames = load_dataset(db)
    held_out, training = held_out_split(frames, 0.1, seed=0)
    epochs = 4 if args.quick else 30
    models = {"ACSF": (ACSFModel(["Cu"], hidden=(32, 32)), TrainConfig(epochs=epochs, batch_size=4)),
              "PaiNN": (PaiNNModel(["Cu"], features=16 if args.quick else 32),
                        TrainConfig(epochs=epochs, batch_size=4, learning_rate=2e-3, decay=0.96))}

    from diffsim.files import pyplot, write_figure

    plt = pyplot()

    fig, axes = plt.subplots(2, 2, figsize=(9, 8))
    spread = 1000 * np.mean(np.abs(np.concatenate([a.get_forces() for a in held_out])))
    for row, (name, (model, config)) in enumerate(models.items()):
        history = train(model, training, config)
        errors = evaluate(model, prepare(model, held_out))
        crystal = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
        md = run_md(crystal, Calculator(model), temperature_K=600, steps=50 if args.quick else 1000, interval=5)
        print(f"{name:5s}: trained in {history.seconds:.0f} s; held-out energy MAE {errors.energy_mae:.1f} "
              f"meV/atom, force MAE {errors.force_mae:.1f} meV/Å (zero-force baseline {spread:.0f}); "
              f"NVE drift {md.drift:+.3f} meV/atom/ps")
        force_parity(*predicted_forces(model, held_out), title=f"{name}:", ax=axes[row, 0])
        nve_energy(md, ax=axes[row, 1])
        axes[row, 1].set_title(f"{name}: NVE, 108 atoms, 2 fs, drift {md.drift:.2g} meV/atom/ps")
    fig.tight_layout()
    path = write_figure(fig, out / "copper_potentials.png")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
