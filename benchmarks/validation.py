"""Physical validation benchmark: potentials trained on EMT data (with stress in the loss, and
with the old energy/force-only loss for comparison), their held-out errors, and the physical
properties they predict beside EMT's own: lattice constant, bulk modulus, C11/C12/C44, vacancy
formation energy, surface energies.

What is measured (float64; one thread):

1. Data: EMT-labelled fcc configurations from ``potentials.reference_data`` (32-atom cubic
   cells: Langevin MD at 300/600/900/1200 K, rattled, strained (±4 %), with a vacancy, and as
   many isotropically scaled crystals (volume ±10 %, the equation of state); energies, forces and
   stresses), for copper and for a Cu-Au alloy (a third of its cells pure Cu or pure Au, the rest
   of random composition). 10 % held out at random.
2. Training: ``ACSFModel(hidden=(32, 32))`` on the metal shells below (``METAL_SHELLS``) and
   ``PaiNNModel(features=32, layers=2)`` with ``potentials.training.train`` under a budget of
   CPU time (``max_seconds``: on a shared machine the wall time is longer; both are printed),
   the default loss (energy 100, forces 10, stress 100, then from 75 % of the budget stage two:
   energy 1000, forces 1, stress 100), cosine schedule over the budget, EMA of the weights, and,
   inside the budget, the exact least-squares refit of the ACSF read-out (``potentials.refit``).
   The first run has a peak learning rate of 2.5e-3 and weighs the EOS crystals and the vacancy
   cells 10 (config_types "eos" and "vacancy"); it is repeated for each of
   ``--seeds`` (initialisation, validation split, batch order) and summarised as mean and spread.
   The "default shells" and "no stress, E:F = 1:10" rows are the earlier descriptor and loss.
3. Held-out errors per config_type (energy meV/atom, forces meV/Å, stress meV/Å³; MAE, RMSE).
4. ``potentials.validation.validate`` model beside EMT for each element (fcc; vacancy and
   surfaces relaxed with BFGS to 0.01 eV/Å); the vacancy also in the data's 32-atom cell
   ("E_vac(32)"), beside the validation's 108-atom cell: a model that fits the one and not the
   other sees farther than the small cell's periodic images.

Targets (issue 16): with stress in the loss, bulk modulus within 3 % and vacancy formation
energy within 0.05 eV of EMT; ACSF held-out force MAE <= 25 meV/Å within 60 s of training;
PaiNN <= 10 meV/Å.

    python benchmarks/validation.py [--quick] [--elements Cu CuAu] [--seconds 60] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

THREADS = int(os.environ.setdefault("OMP_NUM_THREADS", "1").split(",")[0])
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402
from harness import load_average, print_header, print_table  # noqa: E402

import potentials  # noqa: E402
from potentials.metrics import error_table  # noqa: E402
from potentials.model import ACSFModel  # noqa: E402
from potentials.painn import PaiNNModel  # noqa: E402
from potentials.reference_data import _elements, generate_emt_dataset, held_out_split, load_dataset  # noqa: E402
from potentials.training import TrainConfig, train  # noqa: E402
from potentials.validation import ValidationError, calculator_factory, vacancy_energy, validate  # noqa: E402

TARGET_B = 3.0            # %
TARGET_VACANCY = 0.05     # eV
TARGET_ACSF_F = 25.0      # meV/Å
TARGET_PAINN_F = 10.0     # meV/Å


def dataset(element: str, quick: bool, workdir: str):
    path = os.path.join(workdir, f"{element}.db")
    n_md, n_other = (40, 40) if quick else (150, 150)
    t = time.perf_counter()
    generate_emt_dataset(path, element, size=(2, 2, 2), temperatures=(300.0, 600.0, 900.0, 1200.0),
                         md_samples=n_md, md_interval=5, rattled=n_other, strained=n_other, vacancies=n_other,
                         eos=n_other, seed=0, progress=False)
    frames = load_dataset(path)
    test, training = held_out_split(frames, 0.1, seed=1)
    seconds = time.perf_counter() - t
    print(f"\n{element}: {len(frames)} EMT configurations (32-atom cells) generated in {seconds:.0f} s; "
          f"held out at random: {len(test)}")
    return training, test


# radial shells for fcc metals: Gaussians that overlap (a neighbour shell always sits on a
# flank, where the feature changes with the distance) from 2.0 Å to the cutoff, angular shells
# around the first two neighbour shells (the default set's Gaussians are 3 widths apart and its
# copper first shell sits on a peak, where the feature is flat in the distance)
METAL_SHELLS = dict(shifts_radial=tuple(float(x) for x in np.linspace(2.0, 4.85, 10)), eta_radial=10.0,
                    shifts_angular=(2.2, 2.7, 3.2, 3.7))
# config_type weights: the isotropically scaled crystals (the E(V) curve of the bulk modulus) and
# the vacancy cells (whose energies, the vacancy formation energy's, are the least well fitted
# with weight 1: on Cu-Au, 3.6 meV/atom against 1.6 overall) count 10 times
CONFIG_TYPE_WEIGHTS = {"eos": 10.0, "vacancy": 10.0}


def runs(seconds: float):
    """(label, model maker, TrainConfig, seeded) of each training run; ``seeded`` runs are
    repeated for every seed."""
    common = dict(epochs=1000, patience=1000, schedule="cosine", max_seconds=seconds, progress=False,  # CPU s
                  validation_fraction=0.05)
    return [
        ("ACSF, stress in the loss", lambda el, seed: ACSFModel(el, hidden=(32, 32), params=METAL_SHELLS, seed=seed),
         dict(batch_size=4, learning_rate=2.5e-3, config_type_weights=CONFIG_TYPE_WEIGHTS, **common), True),
        ("ACSF, default shells, no refit", lambda el, seed: ACSFModel(el, hidden=(32, 32), seed=seed),
         dict(batch_size=4, learning_rate=5e-3, refit=False, **common), False),
        ("ACSF, no stress, E:F = 1:10 (the old loss)", lambda el, seed: ACSFModel(el, hidden=(32, 32), seed=seed),
         dict(batch_size=4, learning_rate=5e-3, energy_weight=1.0, force_weight=10.0, stress_weight=0.0,
              stage_two=None, refit=False, **common), False),
        ("PaiNN, stress in the loss", lambda el, seed: PaiNNModel(el, features=32, layers=2, cutoff=4.5, seed=seed),
         dict(batch_size=4, learning_rate=2e-3, **common), False),
    ]


def _spread(values, sign: str = "+") -> str:
    """mean ± half the range (min..max) of ``values``."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:{sign}.2f}"
    return f"{v.mean():{sign}.2f} ± {(v.max() - v.min()) / 2:.2f} ({v.min():{sign}.2f}..{v.max():{sign}.2f})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller datasets, 30 s of training, no surfaces")
    parser.add_argument("--elements", nargs="+", default=["Cu", "CuAu"], help="datasets (default Cu CuAu)")
    parser.add_argument("--seconds", type=float, help="training budget per model (default 60, --quick 30)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds (model initialisation, validation split, batch order) of the first run")
    parser.add_argument("--only", nargs="+", help="run only the runs whose label starts with these words")
    parser.add_argument("--save", metavar="DIR", help="save each trained model as DIR/<data>-<run>-seed<seed>.npz")
    args = parser.parse_args(argv)
    seconds = args.seconds or (30.0 if args.quick else 60.0)
    wall = time.perf_counter()
    print_header("diffsim potential validation benchmark" + (" (--quick)" if args.quick else ""),
                 ["diffsim", "numba", "ase"], source=potentials)
    print(f"threads: {THREADS}; at start: {load_average()}")
    summary, spreads = [], []
    with tempfile.TemporaryDirectory(prefix="diffsim-validation-bench-") as workdir:
        for element in args.elements:
            names = _elements(element)
            train_frames, test_frames = dataset(element, args.quick, workdir)
            for label, make, options, seeded in runs(seconds):
                if args.only and not any(label.startswith(w) for w in args.only):
                    continue
                per_seed = []
                for seed in args.seeds if seeded else args.seeds[:1]:
                    row = _run(element, names, label, make, TrainConfig(seed=seed, **options), seed, train_frames,
                               test_frames, args.quick, args.save)
                    summary += row["rows"]
                    per_seed.append(row)
                if len(per_seed) > 1:
                    for el in names:
                        spreads.append([element, el, label, len(per_seed),
                                        _spread([r["forces_mae"] for r in per_seed], sign=""),
                                        _spread([r["B"][el] for r in per_seed if el in r["B"]]),
                                        _spread([r["vacancy"][el] for r in per_seed if el in r["vacancy"]]),
                                        f"{np.mean([r['cpu'] for r in per_seed]):.0f}"])
    print_table("Summary: held-out errors and the two physical targets",
                ["data", "element", "run", "seed", "train CPU s", "epochs", "F MAE meV/Å", "E MAE meV/atom",
                 "S MAE meV/Å³", "B vs EMT %", "E_vac − EMT eV", "E_vac(32) − EMT eV"], summary)
    if spreads:
        print_table("Over the seeds: mean ± half the range (min..max)",
                    ["data", "element", "run", "seeds", "F MAE meV/Å", "B vs EMT %", "E_vac − EMT eV",
                     "train CPU s"], spreads)
    print(f"targets: |B| within {TARGET_B:.0f} %, vacancy within {TARGET_VACANCY} eV (stress runs); ACSF force MAE <= "
          f"{TARGET_ACSF_F:.0f} meV/Å, PaiNN <= {TARGET_PAINN_F:.0f} meV/Å within the budget ({seconds:.0f} s)")
    print(f"at end: {load_average()}; total wall time {time.perf_counter() - wall:.0f} s")


def _small_cell_vacancy(model, element: str, a0: float) -> float:
    """The relaxed vacancy formation energy in the 32-atom cell of the training data (the validation's
    is in a 108-atom cell): a model that fits the data's vacancy cells but not the larger cell sees
    farther than that cell's periodic images (PaiNN: 2 layers of 4.5 Å, 9 Å, beyond the 7.2 Å cell)."""
    return vacancy_energy(calculator_factory(model), element, a0, repeat=2)


def _run(element, names, label, make, config, seed, train_frames, test_frames, quick, save=None) -> dict:
    """Train one model, print its errors and validation; its summary rows and figures."""
    model = make(names, seed)
    t = time.perf_counter()
    history = train(model, train_frames, config, test=test_frames)
    t_train = time.perf_counter() - t
    if save:
        os.makedirs(save, exist_ok=True)
        model.save(os.path.join(save, f"{element}-{label.split(',')[0]}-seed{seed}.npz"))
    refit = " (the last " + f"{history.refit['cpu_seconds']:.1f} s the read-out refit)" if history.refit else ""
    print(f"\n== {element}: {label}, seed {seed}: {len(history.train_loss)} epochs, {history.cpu_seconds:.0f} CPU s of "
          f"training{refit} ({history.seconds:.0f} s wall; {t_train:.0f} s wall with setup), best epoch "
          f"{history.best_epoch + 1}; {load_average()}")
    print(error_table({"test": history.errors["test"]}))
    test = history.errors["test"].get("all", next(iter(history.errors["test"].values())))
    out = {"rows": [], "forces_mae": test["forces_mae"], "cpu": history.cpu_seconds, "B": {}, "vacancy": {}}
    head = [element, "-", label, seed, f"{history.cpu_seconds:.0f}", len(history.train_loss),
            f"{test['forces_mae']:.1f}", f"{test['energy_mae']:.2f}", f"{test['stress_mae']:.2f}"]
    t = time.perf_counter()
    try:
        result = validate(model, "emt", elements=names, surfaces=not quick)
    except ValidationError as exc:
        print(f"validation failed: {exc}")
        out["rows"].append(head + ["failed"] * 3)
        return out
    print(f"validation against EMT ({time.perf_counter() - t:.0f} s):")
    print(result.table())
    for el in names:
        m, r = result.model[el], result.reference[el]
        out["B"][el] = 100 * (m["bulk_modulus"] / r["bulk_modulus"] - 1)
        out["vacancy"][el] = m["vacancy_energy"] - r["vacancy_energy"]
        small = _small_cell_vacancy(model, el, m["lattice_constant"]) - _small_cell_vacancy("emt", el,
                                                                                            r["lattice_constant"])
        out["rows"].append([element, el] + head[2:] + [f"{out['B'][el]:+.1f}", f"{out['vacancy'][el]:+.3f}",
                                                       f"{small:+.3f}"])
    return out


if __name__ == "__main__":
    main()
