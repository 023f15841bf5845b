"""Learned-potential benchmark: diffsim's ACSF and PaiNN potentials trained on EMT copper, their
energy conservation in NVE, and their cost per atom against EMT (ASE, asap3) and TorchANI.

What is measured (float64 everywhere but one TorchANI row; one thread per engine):

1. Quality. An EMT-labelled copper dataset from ``potentials.reference_data`` (fcc Cu, 32-atom
   cubic cells: Langevin MD at 300, 600, 900 and 1200 K, rattled, strained, with a vacancy) is
   split at random into a training set and a held-out set (10 %). An ``ACSFModel(["Cu"],
   hidden=(32, 32))`` (default descriptor: 8 radial + 16 angular features) is trained with
   ``potentials.training.train`` for a fixed number of epochs (full run: 2010 configurations,
   20 epochs of batches of 4, about 3 minutes; --quick: 350 and 20; ``train`` keeps 5 % of the
   training set for its own validation and returns the best epoch's weights).
   Reported: held-out energy MAE (meV/atom) and force MAE (meV/Å), overall and per kind of
   configuration, beside the data's force spread (mean |F| per component, the MAE of a model
   that predicts zero force), and the training time per epoch. Target: force MAE <= 30 meV/Å.
1c. The equivariant model (issue 7): ``PaiNNModel(["Cu"], features=32, layers=2, cutoff=4.5)``
   trained on the same split for the same number of epochs (batches of 4; its own learning
   rate), beside the ACSF model: held-out energy and force MAE, training time per epoch, the time
   and the peak memory (tracemalloc, numpy's arrays included) of one force-training step.
   Target: PaiNN force MAE <= 15 meV/Å and below the ACSF model's.
2. NVE energy drift with the trained model: 108-atom fcc Cu, velocities drawn at 300 and 600 K
   (equipartition takes the crystal to about half of that), ``ase.md.VelocityVerlet`` at 2 fs
   through ``potentials.md.run_md``; drift = slope of a linear fit of the total energy against
   time, in meV/atom/ps; the same runs with ASE's EMT show the integrator's own floor.
   Both trained models. Target: |drift| < 1 meV/atom/ps.
3. Cost per atom of energy + forces on fcc Cu supercells (N = 256 ... 16384; --quick up to
   2048), warm: every call moves one atom by 1e-6 Å so every engine recomputes, but no Verlet
   list needs rebuilding (a "list rebuilt" row rebuilds diffsim's cell list every call). Engines:
   the diffsim ``Calculator`` with the trained model; ASE's EMT; asap3's EMT; TorchANI, when
   installed, with an ``AEVComputer`` (``ANIRadial`` + ``ANIAngular``, cosine cutoff, a Verlet
   cell list with diffsim's 0.3 Å skin) and ``ANINetworks`` of one ``AtomicNetwork`` (tanh, with
   biases), built from scratch with the SAME symmetry functions (checked feature by feature
   against diffsim's, up to TorchANI's feature order and its 1/4 on radial terms) and the same
   layer sizes, random weights, float64, forces by ``torch.autograd.grad``. Then the same at
   ANI-1x size: ANI-1x's H-atom AEV parameters restricted to one element (16 radial shifts,
   R_c 5.2 Å, η 16; 8 angle sections x 4 radial shifts, R_c 3.5 Å, η 8, ζ 32: 48 features) and
   its H network 160-128-96, random weights, in diffsim and in TorchANI (float64, and float32 as
   TorchANI usually runs). Reported in µs per atom, with the exponent of a power-law fit of time
   against N (1 = linear scaling) and ratios to diffsim. Target: the ANI-1x-size diffsim model
   at most 20 µs per atom, linear scaling.
3b. Where diffsim's time per atom goes, for both models: cell-list build, Verlet check and
   distance filter, triplet list, the ACSF kernel forward and its VJP, the networks (forward +
   backward; beside a plain-numpy floor), the rest of the engine (tape, gathers and their
   scatter-add adjoints) and ASE's calculator bookkeeping.
   A row "1 torch thread" runs the ANI-1x-size TorchANI model with torch.set_num_threads(1) for its
   calls (diffsim's kernels are serial; on a loaded 2-core machine torch's pool of 2 spins); the
   last column gives each row's time against the ANI-1x-size diffsim model.
4. Energy + forces per atom of the trained ACSF and PaiNN models side by side (fcc Cu, N up to
   2048), with the power-law exponent.
5. One training epoch beside TorchANI (issue 16): the default and the ANI-1x-size models, the
   same EMT Cu cells in the same order (--quick: 32, full: 200 of the training set), batches of
   4, Adam at the same learning rate, the same loss (100 (ΔE/atom)² + 10 mean ΔF², no stress),
   float64. diffsim: its own epoch loop after train()'s setup (features cached once); TorchANI:
   AEVComputer + ANINetworks, forces by autograd.grad(create_graph=True), one structure per call
   (its periodic neighbour lists take one cell per call), torch's default threads and 1 thread.
   Epoch 1 (cold: first calls, diffsim's Numba compile or cache load) and epoch 2 (warm), wall
   and CPU seconds, ratio to diffsim's warm epoch of the same size.
6. Cold and warm first calls in fresh processes: the ANI-1x-size model's first and second energy
   + forces call at N = 256, diffsim with an empty kernel cache (Numba compiles) and then with
   the cache that left (loads), TorchANI in a fresh process. Only this table and 5's epoch 1
   include compile time; every other table is warm.

Timing: one warm-up call per engine (Numba compiles or loads its cache there), then the best of
interleaved rounds of one call each (5 rounds up to N = 2048, 2 above), garbage collector off.
Compare ratios rather than absolute times across runs: on a shared machine timings vary.

Run ``python benchmarks/learned_potentials.py`` (about 15 minutes on 2 cores, most of it training PaiNN) or
``python benchmarks/learned_potentials.py --quick`` (about 4 minutes; a few hundred configurations and a
short training, so its force MAE is not the full run's); ``--cost-only`` skips sections 1 and 2
(untrained models). Peers are optional and in the ``[bench]`` extra: ``pip install torchani``
(2.9 accepts torch<=2.13, so with torch 2.13.0 CPU installed it pulls no other torch and no
CUDA; check with ``pip install --dry-run torchani``) and ``pip install asap3`` (compiles C++, a few
minutes). A missing peer is reported as skipped. Nothing is asserted. The default environment:
no thread variable set, each engine's own pool (diffsim's Numba kernels are serial); ``OMP_NUM_THREADS=N`` pins them
(benchmarks/thread_setting.py).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from dataclasses import dataclass

import thread_setting  # first: thread pools are sized when numpy loads

THREADS = thread_setting.THREADS
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")  # CUDA extensions: irrelevant on a CPU

import harness  # noqa: E402
import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from harness import fmt_time, git_revision, load_average, print_header, print_table  # noqa: E402

import diffsim as ds  # noqa: E402
import diffsim.numpy as dnp  # noqa: E402
import potentials  # noqa: E402
from diffsim.scatter import scatter_add_rows  # noqa: E402
from diffsim.threads import single_threaded_blas  # noqa: E402
from potentials.calculator import Calculator  # noqa: E402
from potentials.descriptors import ACSFParameters, acsf, acsf_vjp  # noqa: E402
from potentials.md import run_md  # noqa: E402
from potentials.model import ACSFModel  # noqa: E402
from potentials.neighbors import VerletList, neighbor_list, shift_vectors  # noqa: E402
from potentials.painn import PaiNNModel  # noqa: E402
from potentials.reference_data import generate_emt_dataset, held_out_split, load_dataset  # noqa: E402
from potentials.training import TrainConfig, _batch, batch_loss, evaluate, prepare, train  # noqa: E402

A_CU = 3.61                      # Å, the lattice constant the dataset generator uses (ase.build.bulk)
HIDDEN = (32, 32)
TEMPERATURES = (300.0, 600.0, 900.0, 1200.0)
HELD_OUT = 0.1
NUDGE = 1e-6                     # Å: moves one atom so that every engine recomputes
TARGET_FORCE_MAE = 30.0          # meV/Å
TARGET_DRIFT = 1.0               # meV/atom/ps
TARGET_ANI_US = 20.0             # µs/atom
SCALING_TOLERANCE = 0.1          # |exponent - 1| below this counts as linear

# ANI-1x's H-atom AEV (Smith et al. 2017; torchani's 'ani1x' terms) for a single element.
ANI1X_PARAMS = ACSFParameters(
    rc_radial=5.2, eta_radial=16.0, shifts_radial=tuple(0.9 + 0.26875 * np.arange(16)),
    rc_angular=3.5, eta_angular=8.0, zeta=32.0, angles=tuple((np.arange(8) + 0.5) * np.pi / 8),
    shifts_angular=(0.9, 1.55, 2.2, 2.85))
ANI1X_HIDDEN = (160, 128, 96)


@dataclass(frozen=True)
class Mode:
    md_samples: int        # per temperature
    md_interval: int       # MD steps between samples
    others: int            # rattled, strained and vacancy configurations, each
    epochs: int
    nve_steps: int
    sizes: tuple           # fcc repeats of the 4-atom cubic cell
    rounds: int
    profile_repeat: int
    epoch_configs: int     # configurations of the training-epoch comparison (section 5)


QUICK = Mode(md_samples=50, md_interval=5, others=50, epochs=20, nve_steps=250, sizes=(4, 6, 8), rounds=2,
             profile_repeat=8, epoch_configs=32)
FULL = Mode(md_samples=300, md_interval=5, others=270, epochs=20, nve_steps=1500, sizes=(4, 6, 8, 10, 13, 16),
            rounds=2, profile_repeat=10, epoch_configs=200)
TRAIN = dict(batch_size=4, learning_rate=3e-3, decay=0.9, validation_fraction=0.05)
PAINN = dict(features=32, layers=2, n_rbf=16, cutoff=4.5, seed=0)
PAINN_TRAIN = dict(batch_size=4, learning_rate=2e-3, decay=0.96, validation_fraction=0.05)
TARGET_PAINN_FORCE_MAE = 15.0    # meV/Å


# ---------------------------------------------------------------- helpers


def best_seconds(runners: dict, rounds: int, budget: float = 30.0) -> dict:
    """Best seconds per call of each runner: one warm-up call each, then up to ``rounds``
    interleaved rounds of one call (a runner stops once it has spent ``budget`` s); gc off.
    best_of in harness calibrates several calls per measurement, too many for calls of seconds."""
    for fn in runners.values():
        fn()
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    best = dict.fromkeys(runners, float("inf"))
    spent = dict.fromkeys(runners, 0.0)
    try:
        for _ in range(rounds):
            for name, fn in runners.items():
                if spent[name] < budget or best[name] == float("inf"):
                    start = time.perf_counter()
                    fn()
                    elapsed = time.perf_counter() - start
                    best[name] = min(best[name], elapsed)
                    spent[name] += elapsed
    finally:
        if enabled:
            gc.enable()
    return best


def fcc_copper(repeat) -> object:
    repeat = (repeat,) * 3 if np.isscalar(repeat) else tuple(repeat)
    return bulk("Cu", "fcc", a=A_CU, cubic=True).repeat(repeat)


def ase_runner(atoms, calc, rebuild=None):
    """Energy + forces of ``atoms`` with an ASE calculator after moving atom 0 back and forth."""
    atoms = atoms.copy()
    atoms.calc = calc
    sign = [1.0]

    def run():
        if rebuild is not None:
            rebuild()
        sign[0] = -sign[0]
        atoms.positions[0, 0] += sign[0] * NUDGE
        forces = atoms.get_forces()
        return atoms.get_potential_energy(), forces

    return run


def diffsim_runner(atoms, model, rebuild: bool = False):
    calc = Calculator(model)

    def fresh_list():
        calc.neighbors = VerletList(calc.neighbors.cutoff, calc.neighbors.skin)

    return ase_runner(atoms, calc, fresh_list if rebuild else None)


def load_peers() -> dict:
    """asap3's EMT class and (torch, torchani) when importable; else the reason as a string."""
    def asap3():
        from asap3 import EMT as AsapEMT

        return AsapEMT

    def torchani():
        import torch
        import torchani  # noqa: F401
        from torchani.aev import AEVComputer  # noqa: F401

        if THREADS is not None:
            torch.set_num_threads(THREADS)
        return torch

    hints = {"asap3": "pip install asap3 (compiles C++)",
             "torchani": "pip install torchani (with torch==2.13.0 CPU installed; never another torch)"}
    return harness.load_peers({"asap3": asap3, "torchani": torchani},
                              missing=lambda name, exc: f"not installed ({exc}; {hints[name]})")


# ---------------------------------------------------------------- TorchANI built from scratch


def torchani_model(torch, params: ACSFParameters, hidden, seed: int = 0, dtype=None, neighborlist=None):
    """(AEVComputer, ANINetworks) with diffsim's symmetry functions ``params`` and a tanh network
    n_features-hidden-1 with biases, random weights, in ``dtype`` (float64 by default). The Verlet
    cell list (the default ``neighborlist``) keeps state, so build one model per system; training
    on many cells uses ``neighborlist="cell_list"`` (rebuilt every call)."""
    from torchani.aev import AEVComputer, ANIAngular, ANIRadial
    from torchani.neighbors import VerletCellList
    from torchani.nn import ANINetworks, AtomicNetwork

    dtype = dtype or torch.float64
    torch.manual_seed(seed)
    radial = ANIRadial(eta=params.eta_radial, shifts=list(params.shifts_radial), cutoff=params.rc_radial)
    angular = ANIAngular(eta=params.eta_angular, zeta=params.zeta, shifts=list(params.shifts_angular),
                         sections=list(params.angles), cutoff=params.rc_angular)
    aev = AEVComputer(radial, angular, num_species=1,
                      neighborlist=neighborlist or VerletCellList(skin=0.3)).to(dtype)
    # the terms store float32 buffers; put the exact values back after the conversion
    exact = lambda x: torch.tensor(np.asarray(x, dtype=float).reshape(-1), dtype=dtype)
    aev.radial.eta, aev.radial.shifts = exact(params.eta_radial), exact(params.shifts_radial)
    aev.angular.eta, aev.angular.zeta = exact(params.eta_angular), exact(params.zeta)
    aev.angular.shifts, aev.angular.sections = exact(params.shifts_angular), exact(params.angles)
    n_features = aev.out_dim
    net = AtomicNetwork([n_features, *hidden, 1], activation=torch.nn.Tanh(), bias=True)
    return aev, ANINetworks({"Cu": net}).to(dtype)


def torchani_runner(torch, atoms, params, hidden, dtype=None, threads=None):
    """Energy + forces of ``atoms`` by TorchANI after moving atom 0 back and forth; with
    ``threads``, torch's intra-op pool is set to that many threads for the call (and put back)."""
    dtype = dtype or torch.float64
    aev, net = torchani_model(torch, params, hidden, dtype=dtype)
    n = len(atoms)
    species = torch.zeros((1, n), dtype=torch.long)
    cell = torch.tensor(np.array(atoms.cell), dtype=dtype)
    pbc = torch.tensor([True, True, True])
    pos = atoms.positions.copy()
    sign = [1.0]

    def run():
        sign[0] = -sign[0]
        pos[0, 0] += sign[0] * NUDGE
        with torch_threads(torch, threads):
            coords = torch.tensor(pos[None], dtype=dtype, requires_grad=True)
            energy = net(species, aev(species, coords, cell, pbc))
            (grad,) = torch.autograd.grad(energy.sum(), coords)
            return energy.item(), -grad[0].numpy()

    return run


class torch_threads:
    """Context: torch's intra-op pool at ``n`` threads inside (nothing changes with None)."""

    def __init__(self, torch, n):
        self.torch, self.n, self.before = torch, n, None

    def __enter__(self):
        if self.n is not None:
            self.before = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.before is not None:
            self.torch.set_num_threads(self.before)


def check_torchani_features(torch, params) -> float:
    """Largest relative difference between TorchANI's AEV and diffsim's ACSF on a rattled crystal,
    after reordering TorchANI's angular block (radial shift major) and undoing its 1/4."""
    aev, _ = torchani_model(torch, params, (4,))
    atoms = fcc_copper(3)
    atoms.rattle(0.1, seed=1)
    model = ACSFModel(["Cu"], hidden=(4,), params=params)
    G = np.asarray(model.descriptor(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers))
    A = aev(torch.zeros((1, len(atoms)), dtype=torch.long), torch.tensor(atoms.positions[None]),
            torch.tensor(np.array(atoms.cell)), torch.tensor([True] * 3))[0].detach().numpy()
    n_rad, n_th, n_ra = len(params.shifts_radial), len(params.angles), len(params.shifts_angular)
    A = np.concatenate([4.0 * A[:, :n_rad],
                        A[:, n_rad:].reshape(-1, n_ra, n_th).transpose(0, 2, 1).reshape(-1, n_th * n_ra)], axis=1)
    return float(np.max(np.abs(A - G)) / np.max(np.abs(G)))


# ---------------------------------------------------------------- 1. quality


def bench_quality(mode: Mode, workdir: str):
    from ase.db import connect

    path = os.path.join(workdir, "cu_emt.db")
    start = time.perf_counter()
    generate_emt_dataset(path, "Cu", size=(2, 2, 2), temperatures=TEMPERATURES, md_samples=mode.md_samples,
                         md_interval=mode.md_interval, rattled=mode.others, strained=mode.others,
                         vacancies=mode.others, seed=0, progress=False)
    t_generate = time.perf_counter() - start
    frames = load_dataset(path)
    sources = np.array([row.get("source", "?") for row in connect(path).select()])
    assert len(sources) == len(frames)
    test_idx, train_idx = map(np.array, held_out_split(range(len(frames)), HELD_OUT, minimum=1, seed=1))
    train_frames = [frames[k] for k in train_idx]
    test_frames = [frames[k] for k in test_idx]
    atoms_per_frame = np.mean([len(a) for a in frames])
    print(f"\ndataset: {len(frames)} EMT configurations of {atoms_per_frame:.1f} atoms on average "
          f"({', '.join(f'{s} {np.sum(sources == s)}' for s in dict.fromkeys(sources))}), MD samples every "
          f"{mode.md_interval} steps of 2 fs at {', '.join(f'{t:.0f}' for t in TEMPERATURES)} K; generated in "
          f"{t_generate:.1f} s; held out at random: {len(test_frames)}")

    model = ACSFModel(["Cu"], hidden=HIDDEN, seed=0)
    config = TrainConfig(epochs=mode.epochs, patience=mode.epochs, seed=0, progress=False, **TRAIN)
    start = time.perf_counter()
    history = train(model, train_frames, config)
    t_train = time.perf_counter() - start
    epochs = len(history.train_loss)
    per_epoch = history.seconds / epochs
    n_fit = len(train_frames) - max(1, int(round(config.validation_fraction * len(train_frames))))
    us_atom = per_epoch / (n_fit * atoms_per_frame) * 1e6
    d = model.descriptor
    rows = [[f"ACSFModel {d.n_features}-{'-'.join(map(str, HIDDEN))}-1", len(train_frames), n_fit, epochs,
             history.best_epoch + 1, f"{t_train:.1f} s", f"{t_train - history.seconds:.1f} s", fmt_time(per_epoch),
             f"{us_atom:.0f}"]]
    print_table("1a. Training (EMT Cu, 32-atom cells)",
                ["model", "training configs", "fitted (rest: train's validation)", "epochs", "best epoch",
                 "train() wall", "of which setup", "time / epoch", "µs / atom / epoch"], rows)
    print(f"training: TrainConfig(epochs={mode.epochs}, batch_size={TRAIN['batch_size']}, learning_rate="
          f"{TRAIN['learning_rate']}, decay={TRAIN['decay']}/epoch, force_weight={config.force_weight}, "
          f"energy_weight={config.energy_weight}); one epoch = one pass over the fitted configurations plus the "
          "validation metrics")
    curve = ", ".join(f"{k + 1}: {v:.1f}" for k, v in enumerate(history.val_force_mae))
    print(f"validation force MAE by epoch (meV/Å): {curve}")

    test_data = prepare(model, test_frames)
    rows = []
    for label, keep in [("all", np.ones(len(test_frames), bool))] + \
            [(s, sources[test_idx] == s) for s in dict.fromkeys(sources)]:
        subset = [test_data[k] for k in np.flatnonzero(keep)]
        if not subset:
            continue
        errors = evaluate(model, subset)
        forces = np.concatenate([test_frames[k].get_forces() for k in np.flatnonzero(keep)])
        e_atom = np.array([test_frames[k].get_potential_energy() / len(test_frames[k]) for k in np.flatnonzero(keep)])
        spread = 1000 * float(np.mean(np.abs(forces)))
        rows.append([label, len(subset), f"{errors.energy_mae:.2f}", f"{1000 * np.std(e_atom):.1f}",
                     f"{errors.force_mae:.1f}", f"{spread:.0f}", f"{errors.force_mae / spread:.3f}"])
    print_table("1b. Held-out errors (configurations never seen in training)",
                ["configurations", "count", "energy MAE meV/atom", "energy spread (std) meV/atom",
                 "force MAE meV/Å", "force spread mean |F| meV/Å", "MAE / spread"], rows)
    print("spread: mean |F| per component is the force MAE of a model that predicts zero force; the energy "
          "spread is the std of E/N across the configurations")
    mae = evaluate(model, test_data).force_mae
    print(f"target: held-out force MAE <= {TARGET_FORCE_MAE:.0f} meV/Å: {mae:.1f} meV/Å after {epochs} epochs "
          f"({t_train:.0f} s of training), {'met' if mae <= TARGET_FORCE_MAE else 'NOT met'}")
    path = os.path.join(workdir, "cu_model.npz")
    model.save(path)
    return ACSFModel.load(path), train_frames, test_frames, t_train


def force_training_step(model, frames, config):
    """Seconds and peak traced memory (MB; numpy's allocations included) of one force-training
    step (loss, forces and the gradient of both) on a batch of ``frames``."""
    import tracemalloc

    structures = prepare(model, frames)
    model.cache_inputs(structures)  # as train() does: features at the structures' own positions, once
    batch = _batch(structures)
    grad = ds.value_and_grad(lambda w: batch_loss(model, w, batch, config))

    def step(weights):  # as train() takes it: numpy's BLAS on one thread
        with single_threaded_blas():
            return grad(weights)

    step(model.weights)
    seconds = best_seconds({"step": lambda: step(model.weights)}, rounds=3)["step"]
    tracemalloc.start()
    try:
        step(model.weights)
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()
    return seconds, peak


def bench_painn(mode: Mode, acsf: ACSFModel, train_frames, test_frames, t_acsf: float) -> PaiNNModel:
    """Issue 7: the equivariant model on the same data split and number of epochs as 1a."""
    model = PaiNNModel(["Cu"], **PAINN)
    config = TrainConfig(epochs=mode.epochs, patience=mode.epochs, seed=0, progress=False, **PAINN_TRAIN)
    start = time.perf_counter()
    train(model, train_frames, config)
    t_train = time.perf_counter() - start
    rows = []
    for label, m, seconds, cfg in (("ACSFModel", acsf, t_acsf, TrainConfig(**TRAIN)), ("PaiNNModel", model, t_train,
                                                                                      config)):
        errors = evaluate(m, prepare(m, test_frames))
        n_weights = sum(np.size(w) for w in ds.tree.flatten(m.weights)[0])
        step, peak = force_training_step(m, train_frames[:TRAIN["batch_size"]], cfg)
        rows.append([label, n_weights, f"{errors.energy_mae:.2f}", f"{errors.force_mae:.1f}",
                     f"{seconds:.0f} s", fmt_time(seconds / mode.epochs), fmt_time(step), f"{peak:.0f}"])
    spread = 1000 * float(np.mean(np.abs(np.concatenate([a.get_forces() for a in test_frames]))))
    print_table(f"1c. Descriptor model vs equivariant model: same data, split and epochs ({mode.epochs})",
                ["model", "weights", "held-out energy MAE meV/atom", "held-out force MAE meV/Å", "training wall",
                 "per epoch", f"one force-training step ({TRAIN['batch_size']} configs)",
                 "peak memory of that step MB"], rows)
    kwargs = lambda d: ", ".join(f"{k}={v}" for k, v in d.items())
    print(f"PaiNNModel({kwargs(PAINN)}); TrainConfig({kwargs(PAINN_TRAIN)}); "
          f"force spread of the held-out set {spread:.0f} meV/Å; peak memory by tracemalloc (numpy's arrays included)")
    mae = {r[0]: float(r[3]) for r in rows}
    met = mae["PaiNNModel"] <= TARGET_PAINN_FORCE_MAE and mae["PaiNNModel"] < mae["ACSFModel"]
    print(f"target: PaiNN held-out force MAE <= {TARGET_PAINN_FORCE_MAE:.0f} meV/Å and below the descriptor "
          f"model's: {mae['PaiNNModel']:.1f} against {mae['ACSFModel']:.1f} meV/Å, {'met' if met else 'NOT met'}")
    return model


# ---------------------------------------------------------------- 2. NVE drift


def bench_nve(models: dict, mode: Mode) -> None:
    rows, drifts = [], []
    makers = [(f"diffsim {label} (trained)", lambda m=m: Calculator(m)) for label, m in models.items()]
    for T in (300.0, 600.0):
        for name, make in makers + [("ASE EMT (reference)", EMT)]:
            atoms = fcc_copper(3)
            calc = make()
            start = time.perf_counter()
            run = run_md(atoms, calc, temperature_K=T, timestep_fs=2.0, steps=mode.nve_steps, interval=10, seed=0)
            wall = time.perf_counter() - start
            total = 1000 * run.total
            fit = np.polyval(np.polyfit(run.times, total, 1), run.times)
            builds = calc.neighbors.builds if hasattr(calc, "neighbors") else "-"
            if name.startswith("diffsim"):
                drifts.append(run.drift)
            mean_T = run.temperature[len(run.times) // 4:].mean()
            rows.append([name, f"{T:.0f}", f"{run.times[-1]:.2f}", f"{mean_T:.0f}",
                         f"{run.drift:+.1e}", f"{np.std(total - fit):.3f}", f"{np.max(np.abs(total - total[0])):.3f}",
                         builds, f"{wall / mode.nve_steps / len(atoms) * 1e6:.0f}"])
    print_table(f"2. NVE energy conservation: 108-atom fcc Cu, velocity Verlet 2 fs, {mode.nve_steps} steps",
                ["potential", "T start K", "ps", "mean T K (after 1/4)", "drift meV/atom/ps",
                 "E_tot rms about fit meV/atom", "max |E_tot - E_tot(0)| meV/atom", "list builds", "µs / atom / step"],
                rows)
    worst = max(abs(d) for d in drifts)
    print(f"target: |drift| < {TARGET_DRIFT:.0f} meV/atom/ps with the trained models: worst {worst:.1e}, "
          f"{'met' if worst < TARGET_DRIFT else 'NOT met'}")


# ---------------------------------------------------------------- 3. cost per atom


def bench_cost(model: ACSFModel, mode: Mode, peers: dict) -> None:
    torch = peers["torchani"] if not isinstance(peers["torchani"], str) else None
    big = ACSFModel(["Cu"], hidden=ANI1X_HIDDEN, params=ANI1X_PARAMS, seed=0)
    d, db = model.descriptor, big.descriptor
    small_label = f"{d.n_features}-{'-'.join(map(str, HIDDEN))}-1"
    big_label = f"{db.n_features}-{'-'.join(map(str, ANI1X_HIDDEN))}-1"
    engines = {
        f"diffsim {small_label} trained (list reused)": lambda a: diffsim_runner(a, model),
        f"diffsim {small_label} trained (list rebuilt)": lambda a: diffsim_runner(a, model, rebuild=True),
        "ASE EMT (list reused)": lambda a: ase_runner(a, EMT()),
    }
    if not isinstance(peers["asap3"], str):
        engines["asap3 EMT"] = lambda a: ase_runner(a, peers["asap3"]())
    if torch is not None:
        engines[f"TorchANI {small_label} random (list reused)"] = \
            lambda a: torchani_runner(torch, a, model.descriptor.params, HIDDEN)
    engines[f"diffsim {big_label} ANI-1x size (list reused)"] = lambda a: diffsim_runner(a, big)
    if torch is not None:
        engines[f"TorchANI {big_label} ANI-1x size (list reused)"] = \
            lambda a: torchani_runner(torch, a, ANI1X_PARAMS, ANI1X_HIDDEN)
        engines[f"TorchANI {big_label} ANI-1x size, float32"] = \
            lambda a: torchani_runner(torch, a, ANI1X_PARAMS, ANI1X_HIDDEN, dtype=torch.float32)
        engines[f"TorchANI {big_label} ANI-1x size, 1 torch thread"] = \
            lambda a: torchani_runner(torch, a, ANI1X_PARAMS, ANI1X_HIDDEN, threads=1)
    if torch is not None:
        for label, params in ((small_label, d.params), (big_label, ANI1X_PARAMS)):
            print(f"check: TorchANI AEV vs diffsim ACSF ({label}), rattled 108-atom crystal: max |Δ| / max |G| = "
                  f"{check_torchani_features(torch, params):.1e}")
    ns, times, memory = [], {name: [] for name in engines}, []
    for rep in mode.sizes:
        atoms = fcc_copper(rep)
        ns.append(len(atoms))
        runners = {name: make(atoms) for name, make in engines.items()}
        best = best_seconds(runners, rounds=mode.rounds if len(atoms) > 2048 else max(mode.rounds, 5))
        for name in engines:
            times[name].append(best[name])
        memory.append(_peak_bytes(runners[f"diffsim {big_label} ANI-1x size (list reused)"]) / len(atoms))
        del runners
        gc.collect()
    ns = np.array(ns)
    ref = np.array(times[f"diffsim {small_label} trained (list reused)"])
    ref_big = np.array(times[f"diffsim {big_label} ANI-1x size (list reused)"])
    rows = []
    for name, ts in times.items():
        ts = np.array(ts)
        exponent = np.polyfit(np.log(ns), np.log(ts), 1)[0]
        us = ts / ns * 1e6
        rows.append([name] + [f"{u:.1f}" for u in us] + [f"{exponent:.2f}", f"{us.max() / us.min():.2f}",
                                                         f"{ts[-1] / ref[-1]:.2f}x", f"{ts[-1] / ref_big[-1]:.2f}x"])
    print_table("3. Energy + forces, warm, µs per atom (fcc Cu supercells)",
                ["engine"] + [f"N={n}" for n in ns] + ["exponent (1 = linear)", "max / min µs/atom",
                                                       f"time vs diffsim {small_label} at N={ns[-1]}",
                                                       f"time vs diffsim {big_label} at N={ns[-1]}"], rows)
    print("warm: every row is the best call after one warm-up call per engine and size (diffsim's Numba kernels "
          "compiled or loaded from the disk cache in that warm-up; no row includes compile time: section 6 "
          f"times the first calls). torch threads: {torch.get_num_threads() if torch is not None else '-'} by "
          "default (torch's own pool, default environment); the '1 torch thread' row sets torch.set_num_threads(1) "
          "for its calls, as diffsim's kernels are serial")
    print(f"descriptors: {small_label}: diffsim's default ACSF (8 radial shifts R_c 5.0 Å; 4 angles x 4 shifts "
          f"R_c 3.8 Å: {_per_atom(d)}); {big_label}: ANI-1x H AEV for one element (16 radial shifts R_c 5.2 Å; "
          f"8 angles x 4 shifts R_c 3.5 Å: {_per_atom(db)}), network 160-128-96 as ANI-1x's H network")
    print("list reused: the Verlet / cell list is built at the warm-up and kept (atom 0 moves by 1e-6 Å a call); "
          "diffsim still checks the displacements, filters the pairs to the cutoff and rebuilds its triplet "
          "list every call. list rebuilt: diffsim's cell list built from scratch every call. TorchANI: "
          "VerletCellList(skin=0.3), float64 (float32, TorchANI's usual precision, in the row that says so); its "
          "triplets are rebuilt every call too")
    if torch is None:
        print(f"skipped: TorchANI rows, torchani {peers['torchani']}")
    if isinstance(peers["asap3"], str):
        print(f"skipped: asap3 row, asap3 {peers['asap3']}")
    big_us = np.array(times[f"diffsim {big_label} ANI-1x size (list reused)"]) / ns * 1e6
    exponent = np.polyfit(np.log(ns), np.log(big_us * ns), 1)[0]
    linear = abs(exponent - 1) < SCALING_TOLERANCE
    fast = big_us.max() <= TARGET_ANI_US
    print("peak memory of one warm ANI-1x-size diffsim call (tracemalloc, numpy's arrays included), kB per atom: "
          + ", ".join(f"N={n}: {m / 1e3:.1f}" for n, m in zip(ns, memory)))
    print(f"target: diffsim ANI-1x-size model <= {TARGET_ANI_US:.0f} µs per atom, linear scaling: "
          f"{big_us.min():.0f}-{big_us.max():.0f} µs per atom ({'met' if fast else 'NOT met'}), "
          f"exponent {exponent:.2f} ({'linear' if linear else 'NOT linear'} within ±{SCALING_TOLERANCE})")


def _peak_bytes(run) -> float:
    """Peak traced memory (bytes) of one call of ``run``."""
    import tracemalloc

    tracemalloc.start()
    try:
        run()
        return float(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def _per_atom(descriptor) -> str:
    atoms = fcc_copper(3)
    top = descriptor.topology(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers)
    n = len(atoms)
    return f"{descriptor.n_features} features, {len(top['centers']) / n:.0f} pairs and " \
           f"{len(top['triplets']) / n:.0f} triplets per atom in the perfect crystal"


# ---------------------------------------------------------------- 3b. profile


def numpy_networks(model: ACSFModel, G):
    """Sum of the atomic energies and its gradient in G, numpy forward + hand-written backward (one
    element): the floor for the engine's networks row."""
    (s,) = model.symbols
    layers = model.weights[s]
    hs = [(G - model.mean[s]) / model.scale[s]]
    for W, b in layers[:-1]:
        hs.append(np.tanh(hs[-1] @ W + b))
    W, b = layers[-1]
    energy = float(np.sum(hs[-1] @ W + b))
    d = np.broadcast_to(W[:, 0], hs[-1].shape)
    for k in reversed(range(len(layers) - 1)):
        d = (d * (1.0 - hs[k + 1] ** 2)) @ layers[k][0].T
    return energy, d / model.scale[s]


def profile(model: ACSFModel, atoms, rounds: int = 3):
    """[(component, seconds per call)] of one warm Calculator step, measured piece by piece, and
    the largest difference between the plain-numpy network gradient and the engine's."""
    calc = Calculator(model)
    step = ase_runner(atoms, calc)
    d = model.descriptor
    pos, cell, pbc, numbers = atoms.positions.copy(), np.array(atoms.cell), atoms.pbc, atoms.numbers
    pairs = calc.neighbors.pairs(pos, cell, pbc)
    top = d.topology(pos, cell, pbc, numbers, pairs=pairs)
    static = d.static(top)
    i, j, shifts = top["centers"], top["neighbors"], top["shifts"]
    D = pos[j] - pos[i] + shift_vectors(shifts, cell)
    G = np.asarray(acsf(D, **static))
    species = d.species_index(numbers)
    nets = ds.value_and_grad(lambda G: dnp.sum(model.network_energies(model.weights, G, species)))
    g = np.asarray(nets(G)[1])
    gD = np.asarray(acsf_vjp(g, D, **static))
    check = float(np.max(np.abs(numpy_networks(model, G)[1] - g)) / np.max(np.abs(g)))

    def scatter():  # what the adjoint of the two gathers pos[j], pos[i] does (the engine's Numba scatter-add)
        return scatter_add_rows(gD, j, len(pos)) - scatter_add_rows(gD, i, len(pos))

    def wrapper():  # what ASE's Calculator does around calculate(): compare the atoms, keep a copy
        calc.check_state(atoms)
        return atoms.copy()

    parts = {
        "cell-list build (cutoff + skin), when the list is rebuilt": lambda: neighbor_list(
            pos, cell, pbc, calc.neighbors.cutoff + calc.neighbors.skin),
        "Verlet check + distance filter": lambda: calc.neighbors.pairs(pos, cell, pbc),
        "triplet list (Descriptor.topology)": lambda: d.topology(pos, cell, pbc, numbers, pairs=pairs),
        "pair vectors D (numpy)": lambda: pos[j] - pos[i] + shift_vectors(shifts, cell),
        "ACSF kernel forward": lambda: acsf(D, **static),
        "networks forward + backward (engine)": lambda: nets(G),
        "  the same in plain numpy, backward by hand (floor)": lambda: numpy_networks(model, G),
        "ACSF kernel VJP": lambda: acsf_vjp(g, D, **static),
        "  scatter-add of pair gradients (engine, x 2)": scatter,
        "ASE Calculator bookkeeping (state check, atoms copy)": wrapper,
        "energy_forces total": lambda: model.energy_forces(pos, cell, pbc, numbers, topology=top),
        "Calculator step total (list reused)": step,
    }
    t = best_seconds(parts, rounds=rounds)
    inside = t["pair vectors D (numpy)"] + t["ACSF kernel forward"] + t["networks forward + backward (engine)"] + \
        t["ACSF kernel VJP"]
    out = [(k, v) for k, v in t.items() if k != "energy_forces total"]
    out.insert(8, ("rest of the engine (tape, gathers, adjoints)", t["energy_forces total"] - inside))
    parts_sum = t["Verlet check + distance filter"] + t["triplet list (Descriptor.topology)"] + \
        t["energy_forces total"] + t["ASE Calculator bookkeeping (state check, atoms copy)"]
    out.insert(-1, ("sum of the parts of a step", parts_sum))
    return out, check


def bench_profile(model: ACSFModel, mode: Mode) -> None:
    big = ACSFModel(["Cu"], hidden=ANI1X_HIDDEN, params=ANI1X_PARAMS, seed=0)
    atoms = fcc_copper(mode.profile_repeat)
    n = len(atoms)
    columns, checks = zip(*[profile(m, atoms) for m in (model, big)])
    ta, tb = columns[0][-1][1], columns[1][-1][1]
    rows = [[name, f"{a / n * 1e6:.1f}", f"{100 * a / ta:.0f} %", f"{b / n * 1e6:.1f}", f"{100 * b / tb:.0f} %"]
            for (name, a), (_, b) in zip(columns[0], columns[1])]
    d, db = model.descriptor, big.descriptor
    print_table(f"3b. Where diffsim's time goes: one warm energy + forces step, N = {n}",
                ["component", f"{d.n_features}-{'-'.join(map(str, HIDDEN))}-1 µs/atom", "% of step",
                 f"{db.n_features}-{'-'.join(map(str, ANI1X_HIDDEN))}-1 µs/atom", "% of step"], rows)
    print("each component timed alone (best of 3); 'rest of the engine' = energy_forces minus the pieces inside it "
          "(the scatter-add row is part of it); sum of the parts = Verlet check + triplet list + energy_forces + "
          "ASE bookkeeping, against the step timed whole; the cell-list build is not part of a warm step (it "
          "happens when an atom has moved skin/2; table 2 counts the builds in MD)")
    print(f"check: plain-numpy network gradient vs the engine's, max |Δ| / max |g| = {max(checks):.1e}")


# ---------------------------------------------------------------- main


# ---------------------------------------------------------------- 4. PaiNN cost per atom


def bench_training_step(acsf: ACSFModel, painn: PaiNNModel) -> None:
    """One force-training step (energy, forces and stress in the loss, and the weight gradient of
    all) of both models on the same batch of 32-atom EMT cells, per atom."""
    path = os.path.join(tempfile.mkdtemp(prefix="diffsim-step-"), "cu.db")
    generate_emt_dataset(path, "Cu", size=(2, 2, 2), temperatures=(600.0,), md_samples=4, rattled=2, strained=2,
                         vacancies=0, seed=0, progress=False)
    frames = load_dataset(path)
    rows, per_atom = [], {}
    for label, m, cfg in (("ACSFModel", acsf, TrainConfig(**TRAIN)), ("PaiNNModel", painn, TrainConfig(**PAINN_TRAIN))):
        n_atoms = sum(len(a) for a in frames[:8])
        step, peak = force_training_step(m, frames[:8], cfg)
        per_atom[label] = step / n_atoms
        rows.append([label, f"{step * 1e3:.1f}", f"{step / n_atoms * 1e6:.0f}", f"{peak:.0f}"])
    rows[1].append(f"{per_atom['PaiNNModel'] / per_atom['ACSFModel']:.2f}")
    rows[0].append("1")
    print_table("4b. One force-training step, 8 cells of 32 atoms, stress in the loss (warm, best of 3)",
                ["model", "ms", "µs/atom", "peak MB", "/ ACSF"], rows)
    print(f"target: PaiNN <= 2x ACSF per training step: {per_atom['PaiNNModel'] / per_atom['ACSFModel']:.1f}x")


def bench_painn_cost(acsf: ACSFModel, painn: PaiNNModel, mode: Mode) -> None:
    """Energy + forces per atom of the two trained models through the ASE calculator."""
    rows, ns, times = [], [], {"ACSF": [], "PaiNN": []}
    for rep in mode.sizes[:3]:
        atoms = fcc_copper(rep)
        atoms.rattle(0.05, seed=0)
        ns.append(len(atoms))
        best = best_seconds({"ACSF": diffsim_runner(atoms, acsf), "PaiNN": diffsim_runner(atoms, painn)},
                            rounds=max(mode.rounds, 3))
        for name in times:
            times[name].append(best[name])
        rows.append([len(atoms)] + [f"{best[k] / len(atoms) * 1e6:.0f}" for k in times]
                    + [f"{best['PaiNN'] / best['ACSF']:.2f}"])
    print_table("4. Energy + forces per atom of the trained models (fcc Cu, warm, ASE calculator)",
                ["N", "ACSFModel µs/atom", "PaiNNModel µs/atom", "PaiNN / ACSF"], rows)
    for name, t in times.items():
        print(f"{name}: time ∝ N^{np.polyfit(np.log(ns), np.log(t), 1)[0]:.2f}")


# ---------------------------------------------------------------- 5. training epoch beside TorchANI


EPOCH_LOSS = dict(energy_weight=100.0, force_weight=10.0)  # TrainConfig's stage-one weights; no stress term


def diffsim_epoch(model: ACSFModel, frames, batch_size: int, learning_rate: float):
    """(setup seconds, [epoch seconds], [epoch CPU seconds]) of two Adam epochs of diffsim's own
    training loop (``potentials.training._train_epoch``: energies and forces in the loss, one BLAS
    thread, no clipping, no weight average) over ``frames`` in a fixed order. The setup (labels,
    neighbour topology, feature cache, normalisation) is what ``train`` does once before its epochs."""
    from potentials.training import _init_state, _train_epoch

    start = time.perf_counter()
    data = prepare(model, frames)
    model.fit_normalisation(data)  # caches the features at the structures' own positions, as train() does
    setup = time.perf_counter() - start
    config = TrainConfig(batch_size=batch_size, learning_rate=learning_rate, stress_weight=0.0, clip_norm=None,
                         ema_decay=None, stage_two=None, **EPOCH_LOSS)
    state, order = _init_state(model), np.arange(len(data))
    walls, cpus = [], []
    for _ in range(2):
        w, c = time.perf_counter(), time.process_time()
        _train_epoch(model, data, order, config, config, state, learning_rate, None)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return setup, walls, cpus


def torchani_epoch(torch, frames, params, hidden, batch_size: int, learning_rate: float, threads=None):
    """The same as :func:`diffsim_epoch` with TorchANI (AEVComputer + ANINetworks, float64, Adam
    with the same learning rate, the same loss: energy per atom and force components, weights
    EPOCH_LOSS). Cells differ (strained ones), and TorchANI's periodic neighbour lists take one
    cell per call, so each batch runs its structures one by one and sums their losses before one
    backward pass and one Adam step; forces by ``autograd.grad(create_graph=True)``."""
    from torchani.neighbors import CellList

    with torch_threads(torch, threads):
        start = time.perf_counter()
        aev, net = torchani_model(torch, params, hidden, neighborlist=CellList())
        e0 = float(np.mean([a.get_potential_energy() / len(a) for a in frames]))  # diffsim fits E0 too
        items = []
        for a in frames:
            items.append((torch.zeros((1, len(a)), dtype=torch.long), torch.tensor(a.positions[None]),
                          torch.tensor(np.array(a.cell)), torch.tensor(a.pbc.tolist()),
                          a.get_potential_energy() - e0 * len(a), torch.tensor(a.get_forces())))
        optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
        setup = time.perf_counter() - start
        walls, cpus = [], []
        for _ in range(2):
            w, c = time.perf_counter(), time.process_time()
            for k in range(0, len(items), batch_size):
                batch = items[k:k + batch_size]
                n_atoms = sum(int(sp.shape[1]) for sp, *_ in batch)
                loss = 0.0
                for sp, x, cell, pbc, energy, forces in batch:
                    coords = x.clone().requires_grad_(True)
                    e = net(sp, aev(sp, coords, cell, pbc)).sum()
                    (g,) = torch.autograd.grad(e, coords, create_graph=True)
                    r = (e - energy) / sp.shape[1]
                    loss = loss + EPOCH_LOSS["energy_weight"] * r * r / len(batch) \
                        + EPOCH_LOSS["force_weight"] * ((-g[0] - forces) ** 2).sum() / (3.0 * n_atoms)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
    return setup, walls, cpus


def epoch_dataset(mode: Mode) -> list:
    """EMT copper cells for section 5 when no training set was made (--cost-only): 32-atom cells
    from MD at 600 K, rattled and strained, ``mode.epoch_configs`` of them."""
    path = os.path.join(tempfile.mkdtemp(prefix="diffsim-epoch-"), "cu.db")
    third = -(-mode.epoch_configs // 3)
    generate_emt_dataset(path, "Cu", size=(2, 2, 2), temperatures=(600.0,), md_samples=third, rattled=third,
                         strained=third, vacancies=0, seed=0, progress=False)
    return load_dataset(path)[:mode.epoch_configs]


def bench_training_epoch(frames, peers: dict) -> None:
    """Training-epoch time of the default and the ANI-1x-size ACSF model beside TorchANI with the
    same descriptor, network sizes, data, batch size and loss."""
    torch = peers["torchani"] if not isinstance(peers["torchani"], str) else None
    batch_size, lr = TRAIN["batch_size"], TRAIN["learning_rate"]
    n_atoms = sum(len(a) for a in frames)
    rows = []
    for label, params, hidden in (("default", ACSFParameters(), HIDDEN), ("ANI-1x size", ANI1X_PARAMS, ANI1X_HIDDEN)):
        model = ACSFModel(["Cu"], hidden=hidden, params=params, seed=0)
        size = f"{model.descriptor.n_features}-{'-'.join(map(str, hidden))}-1"
        runs = [(f"diffsim {size} ({label})", lambda: diffsim_epoch(model, frames, batch_size, lr))]
        if torch is not None:
            runs.append((f"TorchANI {size} ({label}), torch's default threads",
                         lambda: torchani_epoch(torch, frames, params, hidden, batch_size, lr)))
            runs.append((f"TorchANI {size} ({label}), 1 torch thread",
                         lambda: torchani_epoch(torch, frames, params, hidden, batch_size, lr, threads=1)))
        ref = None
        for name, run in runs:
            setup, walls, cpus = run()
            ref = walls[1] if ref is None else ref
            rows.append([name, f"{setup:.2f}", f"{walls[0]:.2f}", f"{walls[1]:.2f}", f"{cpus[1]:.2f}",
                         f"{walls[1] / n_atoms * 1e6:.0f}", f"{walls[1] / ref:.2f}x"])
    print_table(f"5. One training epoch: {len(frames)} EMT Cu cells ({n_atoms} atoms), batches of {batch_size}, "
                "energies + forces in the loss, Adam",
                ["model", "setup s", "epoch 1 s (cold)", "epoch 2 s (warm)", "epoch 2 CPU s", "warm µs/atom/epoch",
                 "warm epoch vs diffsim (same size)"], rows)
    print(f"loss: {EPOCH_LOSS['energy_weight']:g} (ΔE/atom)² + {EPOCH_LOSS['force_weight']:g} mean ΔF² (eV, Å), "
          f"learning rate {lr}, float64 both; the same frames in the same order. diffsim: its own epoch loop "
          "(potentials.training._train_epoch, one BLAS thread) after train()'s setup, which caches the ACSF "
          "features at the structures' positions once (the epoch differentiates through them with acsf_at); "
          "TorchANI recomputes its AEVs every step (CellList, one structure per call since the cells differ). "
          "epoch 1 (cold) includes diffsim's first calls of the training kernels (Numba compile, or a load from "
          "the disk cache when an earlier run left one) and torch's first-call set-up; epoch 2 is warm")
    if torch is None:
        print(f"skipped: TorchANI rows, torchani {peers['torchani']}")


# ---------------------------------------------------------------- 6. cold and warm first calls

_FIRST_CALL = r"""
import json, os, time
t0 = time.perf_counter()
os.environ["NUMBA_CACHE_DIR"] = {numba_cache!r}  # the ACSF kernels are njit(cache=True): their cache too
import numpy as np
from ase.build import bulk
ENGINE = {engine!r}
atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((4, 4, 4))
atoms.rattle(0.01, seed=0)
if ENGINE == "diffsim":
    from potentials.descriptors import ACSFParameters
    from potentials.model import ACSFModel
    params = ACSFParameters(**{params!r})
    model = ACSFModel(["Cu"], hidden={hidden!r}, params=params, seed=0)
    call = lambda: model.energy_forces(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers)
else:
    import os
    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
    import torch
    if ENGINE == "torchani, 1 thread":
        torch.set_num_threads(1)
    from torchani.aev import AEVComputer, ANIAngular, ANIRadial
    from torchani.neighbors import CellList
    from torchani.nn import ANINetworks, AtomicNetwork
    p = {params!r}
    radial = ANIRadial(eta=p["eta_radial"], shifts=list(p["shifts_radial"]), cutoff=p["rc_radial"])
    angular = ANIAngular(eta=p["eta_angular"], zeta=p["zeta"], shifts=list(p["shifts_angular"]),
                         sections=list(p["angles"]), cutoff=p["rc_angular"])
    aev = AEVComputer(radial, angular, num_species=1, neighborlist=CellList()).double()
    net = ANINetworks({{"Cu": AtomicNetwork([aev.out_dim, *{hidden!r}, 1], activation=torch.nn.Tanh(),
                                            bias=True)}}).double()
    sp = torch.zeros((1, len(atoms)), dtype=torch.long)
    cell, pbc = torch.tensor(np.array(atoms.cell)), torch.tensor([True] * 3)
    def call():
        x = torch.tensor(atoms.positions[None], requires_grad=True)
        e = net(sp, aev(sp, x, cell, pbc)).sum()
        return torch.autograd.grad(e, x)
t1 = time.perf_counter()
call()
t2 = time.perf_counter()
call()
t3 = time.perf_counter()
print(json.dumps({{"imports": t1 - t0, "first": t2 - t1, "second": t3 - t2}}))
"""


def bench_cold_warm(peers: dict) -> None:
    """First and second energy + forces call of the ANI-1x-size model (N = 256) in fresh processes:
    diffsim with an empty kernel cache (Numba compiles) and with the cache that run left (it loads),
    TorchANI in a fresh process."""
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(ANI1X_PARAMS).items()}
    params = {k: [float(x) for x in v] if isinstance(v, list) else float(v) for k, v in params.items()}
    with tempfile.TemporaryDirectory(prefix="diffsim-numba-") as numba_cache:
        script = lambda engine: _FIRST_CALL.format(engine=engine, params=params, hidden=ANI1X_HIDDEN,
                                                   numba_cache=numba_cache)
        (cold, cold_wall), warm = harness.cold_and_warm(script("diffsim"))  # DIFFSIM_CACHE_DIR empty, then kept
        rows = [["diffsim, empty kernel caches (Numba compiles)", cold, cold_wall],
                ["diffsim, the caches of the run above (loads)", *warm[0]]]
        if not isinstance(peers["torchani"], str):
            rows.append(["TorchANI, torch's default threads (fresh process)", *harness.run_fresh(script("torchani"))])
            rows.append(["TorchANI, 1 torch thread (fresh process)", *harness.run_fresh(script("torchani, 1 thread"))])
    table = [[name, f"{r['imports']:.2f}", f"{r['first']:.2f}", f"{r['second'] * 1e3:.0f}", f"{wall:.1f}"]
             for name, r, wall in rows]
    print_table("6. Cold and warm: the first energy + forces calls of the ANI-1x-size model in a fresh process "
                "(N = 256)", ["engine", "imports + model s", "first call s", "second call ms", "process wall s"],
                table)
    print("first call: diffsim's includes the Numba compilation of the ACSF kernels with an empty cache, the load "
          "of the compiled code with a warm one; TorchANI's includes torch's first-call set-up (no compiler). The "
          "warm tables above (3, 5's epoch 2) include neither")
    if isinstance(peers["torchani"], str):
        print(f"skipped: TorchANI row, torchani {peers['torchani']}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few hundred configurations, short training and MD, N up to 2048")
    parser.add_argument("--cost-only", action="store_true",
                        help="sections 3, 3b, 4 and 4b only, with untrained models (cost does not depend on the "
                             "weights' values)")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    wall = time.perf_counter()
    peers = load_peers()
    print_header("diffsim learned-potential benchmark" + (" (--quick)" if args.quick else ""),
                 ["diffsim", "numba", "ase", "asap3", "torch", "torchani"], source=potentials)
    print(f"source:  diffsim from {git_revision(ds)}")
    for name in ("asap3", "torchani"):
        if isinstance(peers[name], str):
            print(f"skipped: {name} {peers[name]}")
    print(f"threads per engine: {THREADS or 'default environment'} (numpy's BLAS; torch: "
          f"{peers['torchani'].get_num_threads() if not isinstance(peers['torchani'], str) else '-'}; diffsim's Numba "
          "kernels are serial); set OMP_NUM_THREADS=N to change")
    print(f"at start: {load_average()}")
    if args.cost_only:
        model, painn = ACSFModel(["Cu"], hidden=HIDDEN), PaiNNModel(["Cu"], **PAINN)
        print("--cost-only: untrained models (random weights)")
        epoch_frames = epoch_dataset(mode)
    else:
        with tempfile.TemporaryDirectory(prefix="diffsim-potentials-bench-") as workdir:
            model, train_frames, test_frames, t_acsf = bench_quality(mode, workdir)
            painn = bench_painn(mode, model, train_frames, test_frames, t_acsf)
        bench_nve({"ACSF": model, "PaiNN": painn}, mode)
        epoch_frames = train_frames[:mode.epoch_configs]
    bench_cost(model, mode, peers)
    bench_profile(model, mode)
    bench_painn_cost(model, painn, mode)
    bench_training_step(model, painn)
    bench_training_epoch(epoch_frames, peers)
    bench_cold_warm(peers)
    print(f"\nat end: {load_average()} (this benchmark counts for about 1)")
    print(f"total wall time: {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
