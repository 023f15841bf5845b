"""Active learning with a committee, EMT as the oracle: start from a few room-temperature
configurations of copper, and in each round

1. train a committee of ACSF potentials on what is labelled so far;
2. explore with it: Langevin MD at rising temperatures, from a perfect, a strained and a
   vacancy cell, the committee's force spread watched at every step (the run stops where it
   passes STOP_SPREAD);
3. pick the frames where the committee disagrees most (``select_uncertain``), label them with
   EMT (the "expensive" reference, here cheap) and add them to the data.

The held-out set is what the potential is for: hot MD, strained and vacancy cells it never saw.
The printed table and the figure show its force error falling as the data grow, and the spread
tracking the error.

    python examples/active_learning.py [--quick] [--out DIR]
"""

import argparse
import pathlib
import tempfile

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read

from potentials.calculator import Calculator
from potentials.committee import select_uncertain, train_committee
from potentials.md import run_md
from potentials.metrics import errors
from potentials.model import ACSFModel
from potentials.reference_data import generate_emt_dataset, label_frames, load_dataset
from potentials.structures import prepare
from potentials.training import TrainConfig

STOP_SPREAD = 1.0  # eV/Å: exploration stops where the committee's force spread passes this


def starts(round_: int):
    """Where round ``round_`` explores from: a perfect, a strained (+3 %) and a vacancy cell."""
    perfect = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    strained = perfect.copy()
    strained.set_cell(strained.cell * 1.03 ** (1 / 3) if round_ % 2 else strained.cell * 0.97 ** (1 / 3),
                      scale_atoms=True)
    vacancy = perfect.copy()
    del vacancy[round_ % len(vacancy)]
    return [perfect, strained, vacancy]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short rounds")
    parser.add_argument("--out", default=".", help="folder for the figure")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rounds = 2 if args.quick else 5
    temperatures = np.linspace(600, 1500, rounds)
    epochs, picks, steps = (30, 6, 40) if args.quick else (60, 12, 300)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        generate_emt_dataset(tmp / "start.db", "Cu", size=(2, 2, 2), temperatures=(300,), md_samples=8,
                             rattled=0, strained=0, vacancies=0, eos=0, seed=1, progress=False)
        generate_emt_dataset(tmp / "test.db", "Cu", size=(2, 2, 2), temperatures=(1200,),
                             md_samples=6 if args.quick else 20, rattled=0, strained=4 if args.quick else 15,
                             vacancies=4 if args.quick else 15, eos=0, seed=99, progress=False)
        data, test = load_dataset(tmp / "start.db"), load_dataset(tmp / "test.db")
        config = TrainConfig(epochs=epochs, batch_size=4, learning_rate=1e-2, schedule="cosine", progress=False)
        rows = []
        for r in range(rounds + 1):
            committee, _ = train_committee(lambda k: ACSFModel(["Cu"], hidden=(16, 16), seed=k), data, config, size=3)
            err = errors(committee, prepare(committee, test))["all"]
            if r == rounds:
                rows.append((r, len(data), err["forces_mae"], err["energy_mae"], float("nan"), 0))
                break
            explored = []
            for k, atoms in enumerate(starts(r)):
                traj = tmp / f"explore{r}_{k}.traj"
                try:  # stop where the committee stops agreeing: beyond, the trajectory is not trustworthy
                    run_md(atoms, Calculator(committee), temperature_K=float(temperatures[r]), steps=steps,
                           interval=2, ensemble="nvt", friction=0.05, seed=r * 10 + k, trajectory=str(traj),
                           uncertainty_threshold=STOP_SPREAD, stop_on_uncertainty=True)
                except ValueError:  # atoms driven closer than the model's inner range: keep what came before
                    pass
                explored += read(traj, index=":")
            picked, spread = select_uncertain(committee, explored, picks, min_separation=2)
            new = label_frames([explored[k] for k in picked], EMT)
            for atoms in new:
                atoms.info["config_type"] = f"round{r + 1}"
            rows.append((r, len(data), err["forces_mae"], err["energy_mae"], float(spread.max()), len(new)))
            data = data + new
            print(f"round {r}: {rows[-1][1]} labelled configurations; held-out force MAE {err['forces_mae']:.0f} "
                  f"meV/Å; explored at {temperatures[r]:.0f} K, largest spread {spread.max():.2f} eV/Å; "
                  f"labelled {len(new)} more")

    print("\nround  labelled  held-out F MAE (meV/Å)  E MAE (meV/atom)  largest spread while exploring (eV/Å)")
    for r, n, f, e, s, _ in rows:
        print(f"{r:5d}  {n:8d}  {f:22.1f}  {e:16.2f}  {s:10.3f}")

    from diffsim.files import pyplot

    plt = pyplot()

    from diffsim.files import write_figure

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot([n for _, n, *_ in rows], [f for _, _, f, *_ in rows], "o-")
    ax[0].set(xlabel="labelled configurations", ylabel="held-out force MAE (meV/Å)",
              title="active learning, EMT as the oracle")
    ax[1].plot([r for r, *_ in rows[:-1]], [s for *_, s, _ in rows[:-1]], "s-", color="tab:red")
    ax[1].set(xlabel="round", ylabel="largest committee force spread (eV/Å)", title="spread while exploring")
    fig.tight_layout()
    path = write_figure(fig, out / "active_learning.png")
    plt.close(fig)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
