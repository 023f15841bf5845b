"""The ``diffsim`` command. Subcommands import what they need when they run, so ``--help``
is instant and the engine never depends on the application packages.

    diffsim demo            the main job: control and a learned potential, checked, written as a report
    diffsim control SYSTEM  solve a ready optimal control problem
    diffsim compare SYSTEM  BPTT vs the continuous adjoint on it
    diffsim mpc SYSTEM      model-predictive control of a ready task in a closed loop
    diffsim potential ...   generate EMT data, train, evaluate, run MD
    diffsim --version
"""

from __future__ import annotations

import argparse
import sys
import time

# Sizes of the demo's runs: --quick and the full run (see README "The demo").
_DEMO_SIZES = {
    "quick": dict(N=100, steps=(25, 50, 100, 200), temperatures=(300.0, 900.0), md_samples=15, rattled=8,
                  strained=8, vacancies=8, hidden=(16, 16), epochs=25, md_size=2, md_steps=300, depth=20, width=32),
    "full": dict(N=100, steps=(25, 50, 100, 200, 400, 800), temperatures=(300.0, 600.0, 900.0, 1200.0), md_samples=40,
                 rattled=20, strained=20, vacancies=20, hidden=(32, 32), epochs=80, md_size=3, md_steps=1000, depth=50,
                 width=64),
}

# Every file the demo writes into its folder.
DEMO_FILES = ("report.md", "report.html", "results.json", "emt_cu.db", "model_cu.npz", "cartpole_trajectory.png",
              "cartpole_controls.png", "cartpole_costates.png", "gradient_vs_dt.png", "learning_curve.png",
              "force_parity.png", "nve_energy.png", "rdf.png", "cartpole_mpc.png")


def _check(checks: list, name: str, value: float, limit: str, passed: bool) -> None:
    """Record one truth the demo asserts about its own results."""
    checks.append({"check": name, "value": float(value), "limit": limit, "passed": bool(passed)})
    if not passed:
        print(f"   CHECK FAILED: {name}: {value:.3g} (expected {limit})", file=sys.stderr)


def _demo_engine(report, size: dict, checks: list) -> dict:
    """Gradients of numpy code against closed forms and finite differences, and the vanishing-
    gradient effect that motivates skip connections."""
    import numpy as np

    import diffsim as ds
    import diffsim.numpy as dnp

    f = lambda x, y: dnp.log(x + dnp.exp(y / x))
    gx, gy = ds.grad(f, argnums=(0, 1))(1.0, 2.0)
    e2 = np.exp(2.0)
    closed = max(abs(float(gx) - (1 - 2 * e2) / (1 + e2)), abs(float(gy) - e2 / (1 + e2)))
    rng = np.random.default_rng(0)
    A, X, B = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    G = ds.grad(lambda X: dnp.sum((A @ X - B) ** 2))(X)
    matrix = float(np.max(np.abs(G - 2 * A.T @ (A @ X - B))))
    W = rng.standard_normal((3, 3))
    net = lambda W, x: dnp.sum(dnp.tanh(W @ x) ** 2) + dnp.linalg.slogdet(W @ W.T + dnp.eye(3))[1]
    ds.check_grads(net, (W, rng.standard_normal(3)), order=2)  # raises with a report if wrong
    H = ds.hessian(lambda x: net(W, x))(np.ones(3))
    symmetry = float(np.max(np.abs(H - H.T)))
    depth, width = size["depth"], size["width"]
    x0 = rng.standard_normal(width)
    nets = {"sigmoid, plain": lambda x, p: 1 / (1 + dnp.exp(-(p[0] @ x))),
            "relu + skip": lambda x, p: x + p[1] @ dnp.maximum(p[0] @ x, 0.0) / np.sqrt(depth)}
    norms = {}
    for name, layer in nets.items():
        params = [(rng.standard_normal((width, width)) * np.sqrt(2.0 / width),
                   rng.standard_normal((width, width)) * np.sqrt(1.0 / width)) for _ in range(depth)]

        def loss(x, params=params, layer=layer):
            for p in params:
                x = layer(x, p)
            return dnp.sum(x) / np.sqrt(width)

        norms[name] = float(np.linalg.norm(ds.grad(loss)(x0)))
    _check(checks, "reverse mode = closed form, f(x, y) = ln(x + exp(y/x))", closed, "< 1e-14", closed < 1e-14)
    _check(checks, "gradient of ||AX - B||² = 2Aᵀ(AX - B)", matrix, "< 1e-12", matrix < 1e-12)
    report.heading("1. The engine")
    report.paragraph("Reverse mode checked against closed forms; `check_grads` compares reverse and forward mode "
                     "with finite differences to second order; the input-gradient norm through a deep network "
                     "shows why skip connections matter.")
    report.table(["check", "result"], [
        ["∂/∂(x, y) ln(x + exp(y/x)) at (1, 2) against the closed form", f"max error {closed:.1e}"],
        ["∇_X ‖AX − B‖² against 2Aᵀ(AX − B)", f"max error {matrix:.1e}"],
        ["check_grads (reverse and forward, order 2) on tanh + slogdet", "passed"],
        ["Hessian symmetry", f"{symmetry:.1e}"],
        *[[f"|dL/dx₀| through {depth} layers of width {width}: {k}", f"{v:.3e}"] for k, v in norms.items()]])
    print(f"   closed forms matched to {max(closed, matrix):.1e}; check_grads passed; |dL/dx0| "
          + ", ".join(f"{k} {v:.2e}" for k, v in norms.items()))
    return {"closed_form_error": closed, "matrix_gradient_error": matrix, "hessian_asymmetry": symmetry,
            "input_gradient_norms": norms}


def _demo_control(report, size: dict, checks: list) -> dict:
    """The cart-pole swing-up solved with BPTT and with continuous-adjoint gradients, and the two
    gradients compared as the grid is refined."""
    import numpy as np

    from trajectories import compare, solve
    from trajectories.systems import cart_pole_swingup

    problem = cart_pole_swingup(N=size["N"])
    goal = np.array([1.0, np.pi, 0.0, 0.0])
    sols = {}
    for g in ("bptt", "adjoint"):
        # the adjoint's gradient matches the discrete cost only to O(dt^4): ask the optimiser for what it can certify
        sols[g] = solve(problem, method="single", gradient=g, tol=1e-8 if g == "adjoint" else 1e-12)
        print(f"   single shooting with {g} gradients: {sols[g]}")
    # gradients compared at the BPTT optimum, resampled on finer and coarser grids for the dt study
    c = compare(problem, solution=sols["bptt"], steps=size["steps"], optimize=False)
    c.solutions, c.controls = sols, "the BPTT optimum"
    b, a = sols["bptt"], sols["adjoint"]
    cost_gap = abs(a.cost - b.cost) / abs(b.cost)
    control_gap = float(np.max(np.abs(a.u - b.u)))
    gaps = {r["method"]: r["gap"] for r in c.rows}
    print(f"   costs agree to {cost_gap:.1e} (relative); adjoint vs BPTT gradient gap {gaps['adjoint']:.1e} at "
          f"N = {problem.N}; order of the gap as dt shrinks {c.slope:.2f} (RK4: 4)")
    for name, s in sols.items():
        err = float(np.max(np.abs(s.x[-1] - goal))) if s.status else np.inf
        _check(checks, f"cart-pole solved with {name} gradients (final-state error)", err, "< 1e-6",
               bool(s.status) and err < 1e-6)
    _check(checks, "BPTT and adjoint optima: relative cost difference", cost_gap, "< 1e-4", cost_gap < 1e-4)
    _check(checks, f"adjoint vs BPTT gradient, relative gap at N = {problem.N}", gaps["adjoint"], "< 1e-3",
           gaps["adjoint"] < 1e-3)
    _check(checks, "checkpointed BPTT = BPTT (relative gap)", gaps["checkpointed"], "< 1e-12",
           gaps["checkpointed"] < 1e-12)
    _check(checks, "BPTT against central finite differences", c.fd_error, "< 1e-6", c.fd_error < 1e-6)
    _check(checks, "order of the adjoint-BPTT gap in dt (RK4)", c.slope, "4 ± 0.5", abs(c.slope - 4) < 0.5)

    report.heading("2. Optimal control: cart-pole swing-up, BPTT and the continuous adjoint")
    report.paragraph(f"Kelly's cart-pole swing-up (move the cart 1 m and invert the pole in T = {problem.T:g} s, "
                     f"|F| ≤ 20 N, minimise ∫F² dt), N = {problem.N} RK4 intervals, solved by direct single shooting "
                     "twice: with BPTT gradients (the exact discrete adjoint) and with the continuous costate "
                     "equation integrated backward (the adjoint). They are the same computation seen from two "
                     "sides: their gradients differ by O(dt⁴) and both reach the same optimum.")
    report.table(["gradient", "status", "cost ∫F² dt", "iterations", "gradients", "wall time (s)",
                  "max |x(T) − goal|"],
                 [[name, "solved" if s.status else "FAILED: " + s.message, f"{s.cost:.8g}", s.iterations,
                   s.gradient_evaluations, f"{s.wall_time:.2f}", f"{np.max(np.abs(s.x[-1] - goal)):.1e}"]
                  for name, s in sols.items()])
    report.paragraph(f"The two optimal controls differ by at most {control_gap:.2e} N; the costs by "
                     f"{cost_gap:.1e} (relative).")
    names = (problem.x_names, problem.u_names)
    report.figure(b.plot(names=names), "cartpole_trajectory.png",
                  "Cart-pole swing-up (BPTT gradients): states, control and costates")
    report.figure(c.plot(panels=("controls",)), "cartpole_controls.png",
                  "Optimal force from single shooting with each gradient")
    report.figure(c.plot(panels=("costates", "densities")), "cartpole_costates.png",
                  "Costates at the optimum (the Lagrangian's): BPTT's ∂L/∂x_k, the continuous adjoint's λ(t_k) "
                  "and DDP's V_x(k); control-gradient densities ∂H/∂u (zero on the free controls)")
    report.paragraph("Gradients of the Lagrangian J + Σ λ_i h_i(x(T)) (λ: the terminal multipliers at the optimum) "
                     "at the BPTT optimum from each method, DDP's value gradient V_x beside them, and the gap between "
                     "the adjoint and BPTT as the grid is refined (time scaled to [0, 1]):")
    report.preformatted(c.table())
    report.figure(c.plot(panels=("gap",)), "gradient_vs_dt.png",
                  f"Relative gap adjoint − BPTT against dt: slope {c.slope:.2f} (RK4: 4)")
    return {"N": problem.N, "costs": {k: s.cost for k, s in sols.items()},
            "iterations": {k: s.iterations for k, s in sols.items()},
            "status": {k: bool(s.status) for k, s in sols.items()}, "cost_gap": cost_gap,
            "control_gap": control_gap, "gradient_gaps": gaps, "fd_error": c.fd_error,
            "steps": [int(k) for k in c.steps], "gaps_vs_dt": c.gaps[:, 0].tolist(), "slope": c.slope}


def _demo_potential(report, size: dict, checks: list, folder) -> dict:
    """EMT copper data into a local ase.db, an ACSF potential trained on it, errors on held-out
    structures, and MD with the trained model against EMT."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from potentials.calculator import Calculator
    from potentials.figures import force_parity, learning_curve, nve_energy, predicted_forces, radial_distribution_plot
    from potentials.md import compare_with_reference
    from potentials.model import ACSFModel
    from potentials.reference_data import generate_emt_dataset, load_dataset
    from potentials.training import TrainConfig, evaluate, prepare, train

    db = folder / "emt_cu.db"
    n = generate_emt_dataset(db, "Cu", size=(2, 2, 2), temperatures=size["temperatures"],
                             md_samples=size["md_samples"], rattled=size["rattled"], strained=size["strained"],
                             vacancies=size["vacancies"], seed=0)
    frames = load_dataset(db)
    order = np.random.default_rng(0).permutation(len(frames))
    n_test = max(2, len(frames) // 10)
    test, training = [frames[k] for k in order[:n_test]], [frames[k] for k in order[n_test:]]
    model = ACSFModel(["Cu"], hidden=size["hidden"], seed=0)
    history = train(model, training, TrainConfig(epochs=size["epochs"], batch_size=4, seed=0))
    model.save(folder / "model_cu.npz")
    errors = evaluate(model, prepare(model, test))
    f_ref, f_pred = predicted_forces(model, test)
    spread = 1000 * float(np.mean(np.abs(f_ref)))
    print(f"   {n} EMT structures; trained on {len(training)} in {history.seconds:.1f} s; held-out ({n_test}): "
          f"energy MAE {errors['energy_mae']:.2f} meV/atom, force MAE {errors['force_mae']:.1f} meV/Å "
          f"(force spread {spread:.0f} meV/Å)")
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((size["md_size"],) * 3)
    temperature = 600.0
    md = compare_with_reference(atoms, Calculator(model), EMT(), temperature_K=temperature, steps=size["md_steps"],
                                interval=10, progress=True)
    ps = size["md_steps"] * 2.0 / 1000
    print(f"   MD, {len(atoms)} atoms, {ps:g} ps: NVE drift {md['drift']:.2g} meV/atom/ps; g(r) against EMT's "
          f"{md['rdf_difference']:.3f} (relative L1)")
    _check(checks, "held-out force MAE below the data's force spread (meV/Å)", errors["force_mae"],
           f"< {spread:.0f}", errors["force_mae"] < spread)
    _check(checks, "NVE energy drift with the learned potential (meV/atom/ps)", md["drift"], "|drift| < 1",
           bool(np.isfinite(md["drift"])) and abs(md["drift"]) < 1.0)
    _check(checks, "g(r) learned vs EMT, relative L1 difference", md["rdf_difference"], "< 0.25",
           md["rdf_difference"] < 0.25)

    report.heading("3. A learned potential for copper, and MD with it")
    report.paragraph(f"Reference data generated now with ASE's EMT into `emt_cu.db` (an ase.db): {n} structures of "
                     f"32-atom fcc Cu cells (Langevin MD at {', '.join(f'{t:g}' for t in size['temperatures'])} K, "
                     "rattled, strained, with a vacancy). A random 10 % is held out; an ACSF model (per-element "
                     f"networks {size['hidden']} on atom-centred symmetry functions, forces −∂E/∂R by reverse mode) "
                     f"is trained on energies and forces with Adam for {len(history.train_loss)} epochs "
                     f"({history.seconds:.1f} s) and saved as `model_cu.npz`.")
    report.table(["held-out structures", "energy MAE (meV/atom)", "force MAE (meV/Å)",
                  "force spread: mean |F| (meV/Å)"],
                 [[n_test, f"{errors['energy_mae']:.2f}", f"{errors['force_mae']:.1f}", f"{spread:.0f}"]])
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
    return {"structures": n, "training_structures": len(training), "held_out_structures": n_test,
            "epochs": len(history.train_loss), "training_seconds": history.seconds,
            "energy_mae_meV_per_atom": errors["energy_mae"], "force_mae_meV_per_A": errors["force_mae"],
            "force_spread_meV_per_A": spread, "md_atoms": len(atoms), "md_steps": size["md_steps"],
            "nve_drift_meV_per_atom_per_ps": md["drift"], "rdf_difference": md["rdf_difference"]}


def _demo_mpc(report, size: dict, checks: list) -> dict:
    """Cart-pole MPC under pushes, beside open-loop replay and DDP gains (trajectories.mpc_cli)."""
    from trajectories.mpc_cli import demo_mpc

    return demo_mpc(report, size, checks, _check)


def _demo(args: argparse.Namespace) -> int:
    """The main job, on embedded defaults (no network, no external data): (1) the engine's gradients
    against closed forms and finite differences; (2) the cart-pole swing-up solved with BPTT and with
    continuous-adjoint gradients, and their gap as dt shrinks; (3) EMT copper data generated into an
    ase.db, an ACSF potential trained on it, its held-out force error, and MD with it (NVE drift, g(r)
    against EMT). Writes a report (report.md, report.html), its figures and results.json into --out.
    Exits non-zero if any of the report's checks fails."""
    import json
    import pathlib

    import matplotlib

    matplotlib.use("Agg")

    from . import __version__
    from .files import write_atomic
    from .report import Report

    folder = pathlib.Path(args.out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    size = _DEMO_SIZES["quick" if args.quick else "full"]
    report = Report(folder, "diffsim demo")
    report.paragraph(f"diffsim {__version__}, `diffsim demo{' --quick' if args.quick else ''}`, "
                     f"{time.strftime('%Y-%m-%d %H:%M')}. One reverse-mode engine gives the gradients of a "
                     "trajectory (control) and the forces of a learned energy (chemistry); everything below was "
                     "computed in this run, from data generated in it.")
    checks: list = []
    results: dict = {"quick": bool(args.quick)}
    seconds: dict = {}
    t0 = time.perf_counter()
    steps = [("engine", "gradients against closed forms", _demo_engine),
             ("control", "cart-pole swing-up, BPTT and adjoint", _demo_control),
             ("mpc", "cart-pole MPC under pushes", _demo_mpc),
             ("potential", "EMT copper data, a learned potential, MD", _demo_potential)]
    for k, (key, title, step) in enumerate(steps, 1):
        print(f"[{k}/{len(steps)}] {title}", flush=True)
        t = time.perf_counter()
        extra = (folder,) if key == "potential" else ()
        results[key] = step(report, size, checks, *extra)
        seconds[key] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    failed = [c for c in checks if not c["passed"]]
    report.heading("Checks")
    report.table(["check", "value", "expected", ""],
                 [[c["check"], f"{c['value']:.3g}", c["limit"], "pass" if c["passed"] else "**FAIL**"]
                  for c in checks])
    report.paragraph(f"Wall time {seconds['total']:.1f} s: engine {seconds['engine']:.1f} s, control "
                     f"{seconds['control']:.1f} s, potential {seconds['potential']:.1f} s (the first run on a "
                     "machine also compiles Numba kernels; later runs load them from the cache).")
    results.update(checks=checks, seconds=seconds, files=list(DEMO_FILES))
    write_atomic(folder / "results.json", json.dumps(results, indent=2, default=float) + "\n")
    md, page = report.write()
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed in {seconds['total']:.1f} s")
    print(f"wrote the report to {md} (and {page.name}, results.json and the figures beside it)")
    return 1 if failed else 0


def _control(args: argparse.Namespace) -> int:
    """Solve a ready optimal control problem; print the result, optionally plot it."""
    from trajectories import SYSTEMS, solve

    problem = SYSTEMS[args.system](N=args.steps) if args.steps is not None else SYSTEMS[args.system]()
    sol = solve(problem, method=args.method, gradient=args.gradient)
    print(f"{problem.name} (N = {problem.N}, {problem.scheme}): {sol}")
    if sol.status:
        print("final state: " + ", ".join(f"{n} = {v:.6g}" for n, v in zip(problem.x_names, sol.x[-1])))
    if args.plot:
        sol.plot(args.plot, names=(problem.x_names, problem.u_names))
        print(f"wrote {args.plot}")
    if not sol.status:
        print(f"error: {sol.message}", file=sys.stderr)
        return 1
    return 0


def _compare(args: argparse.Namespace) -> int:
    """BPTT, checkpointed BPTT and the continuous adjoint on a ready problem: table and figure."""
    from trajectories import SYSTEMS, compare

    problem = SYSTEMS[args.system](N=args.steps) if args.steps is not None else SYSTEMS[args.system]()
    result = compare(problem, optimize=not args.no_optimize)
    print(result.table())
    if args.plot:
        result.plot(args.plot)
        print(f"wrote {args.plot}")
    failed = [k for k, s in result.solutions.items() if not s.status]
    return 1 if failed else 0


def _potential(args: argparse.Namespace) -> int:
    """Learned interatomic potentials: generate EMT data, train, evaluate, run MD."""

    from potentials.model import ACSFModel, ModelFileError, load_model
    from potentials.reference_data import DatasetError, generate_emt_dataset, load_dataset

    try:
        if args.action == "generate":
            quick = dict(temperatures=(300.0, 900.0), md_samples=10, rattled=5, strained=5, vacancies=5) \
                if args.quick else dict(temperatures=tuple(args.temperatures), md_samples=args.md_samples)
            n = generate_emt_dataset(args.out, args.element, size=(args.size,) * 3, seed=args.seed, **quick)
            print(f"wrote {n} EMT-labelled {args.element} configurations to {args.out}")
            return 0
        if args.action == "train":
            from potentials.figures import learning_curve
            from potentials.painn import PaiNNModel
            from potentials.training import TrainConfig, train

            frames = load_dataset(args.data)
            elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
            if args.model == "painn":
                model = PaiNNModel(elements, features=args.features, layers=args.layers, cutoff=args.cutoff,
                                   seed=args.seed)
            else:
                model = ACSFModel(elements, hidden=tuple(args.hidden), seed=args.seed)
            rate = args.learning_rate or (2e-3 if args.model == "painn" else 5e-3)
            config = TrainConfig(epochs=10 if args.quick else args.epochs, batch_size=args.batch_size,
                                 learning_rate=rate, seed=args.seed, checkpoint=args.checkpoint,
                                 optimizer=args.optimizer)
            history = train(model, frames, config)
            model.save(args.out)
            print(f"trained on {len(frames)} structures in {history.seconds:.1f} s; best epoch {history.best_epoch}; "
                  f"validation energy MAE {history.val_energy_mae[history.best_epoch]:.2f} meV/atom, "
                  f"force MAE {history.val_force_mae[history.best_epoch]:.1f} meV/Å")
            print(f"wrote {args.out}")
            if args.curve:
                learning_curve(history, args.curve)
                print(f"wrote {args.curve}")
            return 0
        model = load_model(args.model_file)
        if args.action == "evaluate":
            from potentials.training import evaluate, prepare

            frames = load_dataset(args.data)
            errors = evaluate(model, prepare(model, frames))
            print(f"{len(frames)} structures: energy MAE {errors['energy_mae']:.2f} meV/atom, "
                  f"force MAE {errors['force_mae']:.1f} meV/Å")
            if args.plot:
                from potentials.figures import force_parity, predicted_forces

                force_parity(*predicted_forces(model, frames), args.plot, title="held-out")
                print(f"wrote {args.plot}")
            return 0
        if args.action == "md":
            from ase.build import bulk
            from ase.calculators.emt import EMT

            from potentials.calculator import Calculator
            from potentials.md import compare_with_reference

            atoms = bulk(model.symbols[0], "fcc", cubic=True).repeat((args.size,) * 3)
            out = compare_with_reference(atoms, Calculator(model), EMT(), temperature_K=args.temperature,
                                         steps=args.steps, plot=args.plot)
            print(f"{len(atoms)} atoms, {args.steps} steps of 2 fs at {args.temperature} K: NVE drift "
                  f"{out['drift']:.3f} meV/atom/ps; g(r) differs from EMT's by {out['rdf_difference']:.3f} (L1)")
            if args.plot:
                print(f"wrote {args.plot}")
            return 0
    except (DatasetError, ModelFileError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``diffsim`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="diffsim",
        description="Differentiable physics on a CPU: exact gradients, compiled loops.",
        epilog="Start with 'diffsim demo'. 'diffsim COMMAND --help' describes a command's options.")
    parser.add_argument("--version", action="version", version=f"diffsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the main job: control and a learned potential, checked, in a report",
                          description=_demo.__doc__)
    demo.add_argument("--quick", action="store_true",
                      help="a smaller, faster run (about 20 s with warm caches; the full run takes a few minutes; "
                           "the first run on a machine also compiles Numba kernels)")
    demo.add_argument("--out", metavar="DIR", default="diffsim-demo-report",
                      help="folder for the report, its figures, data and model (default ./diffsim-demo-report)")
    demo.set_defaults(func=_demo)

    from trajectories.systems import SYSTEMS  # names only; cheap

    control = sub.add_parser("control", help="solve a ready optimal control problem",
                             description=_control.__doc__)
    control.add_argument("system", choices=sorted(SYSTEMS), help="which problem")
    control.add_argument("--method", choices=["single", "multiple", "pontryagin"], default="single",
                         help="direct single shooting (default), direct multiple shooting, or Pontryagin's BVP")
    control.add_argument("--gradient", choices=["bptt", "checkpointed", "adjoint"], default="bptt",
                         help="how single shooting differentiates the rollout (default bptt)")
    control.add_argument("--steps", type=int, help="number of control intervals N (default: the system's)")
    control.add_argument("--plot", metavar="FILE", help="write states, controls and costates to FILE (png, pdf)")
    control.set_defaults(func=_control)

    comp = sub.add_parser("compare", help="BPTT vs continuous adjoint on a ready problem", description=_compare.__doc__)
    comp.add_argument("system", choices=sorted(SYSTEMS), help="which problem")
    comp.add_argument("--steps", type=int, help="number of control intervals N (default: the system's)")
    comp.add_argument("--plot", metavar="FILE", help="write the comparison figure to FILE")
    comp.add_argument("--no-optimize", action="store_true", help="compare gradients only, do not optimise")
    comp.set_defaults(func=_compare)

    from trajectories.mpc_cli import add_mpc_parser

    add_mpc_parser(sub)

    pot = sub.add_parser("potential", help="learned interatomic potentials: generate, train, evaluate, md",
                         description=_potential.__doc__)
    act = pot.add_subparsers(dest="action", metavar="ACTION", required=True)
    gen = act.add_parser("generate", help="EMT-labelled reference data (MD, rattled, strained, vacancies) to an ase.db")
    gen.add_argument("--element", default="Cu", help="an EMT element or alloy, e.g. Cu, CuAu (default Cu)")
    gen.add_argument("--out", default="emt.db", help="the file to write: .db (ase.db) or .xyz/.extxyz (default emt.db)")
    gen.add_argument("--size", type=int, default=3, help="fcc cubic cell repeated size³ times (default 3: 108 atoms)")
    gen.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 600.0, 900.0, 1200.0],
                     help="Langevin MD temperatures in K (default 300 600 900 1200)")
    gen.add_argument("--md-samples", type=int, default=50, help="MD samples per temperature (default 50)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument("--quick", action="store_true", help="a small dataset")
    tr = act.add_parser("train", help="train a potential on energies and forces")
    tr.add_argument("--data", required=True, help="ase.db or extxyz with energies and forces")
    tr.add_argument("--out", default="model.npz", help="the model file to write (default model.npz)")
    tr.add_argument("--model", choices=["acsf", "painn"], default="acsf",
                    help="acsf: per-element networks on symmetry functions (default); painn: equivariant message "
                         "passing")
    tr.add_argument("--hidden", type=int, nargs="+", default=[32, 32],
                    help="acsf: hidden layer widths (default 32 32)")
    tr.add_argument("--features", type=int, default=32, help="painn: feature width (default 32)")
    tr.add_argument("--layers", type=int, default=2, help="painn: interaction layers (default 2)")
    tr.add_argument("--cutoff", type=float, default=4.5, help="painn: pair cutoff in Å (default 4.5)")
    tr.add_argument("--epochs", type=int, default=200, help="epochs (Adam) or iterations (L-BFGS)")
    tr.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam",
                    help="Adam on minibatches (default) or full-batch L-BFGS")
    tr.add_argument("--batch-size", type=int, default=8, help="structures per Adam step (default 8)")
    tr.add_argument("--learning-rate", type=float,
                    help="Adam's initial learning rate (default 5e-3 for acsf, 2e-3 for painn)")
    tr.add_argument("--checkpoint", help="save every epoch here and resume from it")
    tr.add_argument("--curve", metavar="FILE", help="write the learning curve to FILE")
    tr.add_argument("--seed", type=int, default=0, help="seed of the weights and the data split (default 0)")
    tr.add_argument("--quick", action="store_true", help="10 epochs")
    ev = act.add_parser("evaluate", help="energy and force errors of a model on a dataset")
    ev.add_argument("model_file", help="a model written by 'train'")
    ev.add_argument("--data", required=True, help="ase.db or extxyz with reference energies and forces")
    ev.add_argument("--plot", metavar="FILE", help="write a force parity plot")
    md = act.add_parser("md", help="NVE drift and g(r)/MSD against EMT for an fcc crystal")
    md.add_argument("model_file", help="a model written by 'train'")
    md.add_argument("--temperature", type=float, default=600.0, help="initial temperature in K (default 600)")
    md.add_argument("--steps", type=int, default=2000, help="MD steps of 2 fs per run (default 2000)")
    md.add_argument("--size", type=int, default=3, help="fcc cubic cell repeated size³ times (default 3: 108 atoms)")
    md.add_argument("--plot", metavar="FILE", help="write g(r), MSD and the NVE energy to FILE")
    pot.set_defaults(func=_potential)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diffsim`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
