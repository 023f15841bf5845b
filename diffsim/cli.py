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
import errno
import math
import sys
import time

from .errors import ComputationFailed, DiffsimError  # ComputationFailed: a computation that ran and failed, exit 1
from .termination import Terminated, signals_raise

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
        sols[g] = solve(problem, method="single", solver="scipy", gradient=g, tol=1e-8 if g == "adjoint" else 1e-12)
        print(f"   single shooting with {g} gradients: {sols[g]}")
    # accuracy of the gradients: J + Σ h_i(x(T)) with unit weights at the BPTT optimum (its gradient is
    # far from zero, so relative gaps mean something), resampled on finer and coarser grids for the
    # dt study; the costates at the optimum: the Lagrangian with the solver's multipliers
    checked = compare(problem, U=sols["bptt"].u, steps=size["steps"], optimize=False)
    c = compare(problem, solution=sols["bptt"], steps=size["steps"], optimize=False)
    c.solutions, c.controls = sols, "the BPTT optimum"
    b, a = sols["bptt"], sols["adjoint"]
    cost_gap = abs(a.cost - b.cost) / abs(b.cost)
    control_gap = float(np.max(np.abs(a.u - b.u)))
    gaps = {r["method"]: r["gap"] for r in checked.rows}
    print(f"   costs agree to {cost_gap:.1e} (relative); adjoint vs BPTT gradient gap {gaps['adjoint']:.1e} at "
          f"N = {problem.N}; order of the gap as dt shrinks {checked.slope:.2f} (RK4: 4)")
    for name, s in sols.items():
        err = float(np.max(np.abs(s.x[-1] - goal))) if s.status else np.inf
        _check(checks, f"cart-pole solved with {name} gradients (final-state error)", err, "< 1e-6",
               bool(s.status) and err < 1e-6)
    _check(checks, "BPTT and adjoint optima: relative cost difference", cost_gap, "< 1e-4", cost_gap < 1e-4)
    _check(checks, f"adjoint vs BPTT gradient, relative gap at N = {problem.N}", gaps["adjoint"], "< 1e-3",
           gaps["adjoint"] < 1e-3)
    _check(checks, "checkpointed BPTT = BPTT (relative gap)", gaps["checkpointed"], "< 1e-12",
           gaps["checkpointed"] < 1e-12)
    _check(checks, "BPTT against central finite differences", checked.fd_error, "< 1e-6", checked.fd_error < 1e-6)
    _check(checks, "order of the adjoint-BPTT gap in dt (RK4)", checked.slope, "4 ± 0.5",
           abs(checked.slope - 4) < 0.5)

    report.heading("2. Optimal control: cart-pole swing-up, BPTT and the continuous adjoint")
    report.paragraph(f"Kelly's cart-pole swing-up (move the cart 1 m and invert the pole in T = {problem.T:g} s, "
                     f"|F| ≤ 20 N, minimise ∫F² dt), N = {problem.N} RK4 intervals, solved by direct single shooting "
                     "twice: with BPTT gradients (the exact discrete adjoint) and with the continuous costate "
                     "equation integrated backward (the adjoint). They are the same computation seen from two "
                     "sides: their gradients differ by O(dt⁴) and both reach the same optimum.")
    report.table(["gradient", "status", "cost ∫F² dt", "iterations", "gradients", "wall time (s)",
                  "max |x(T) − goal|"],
                 [[name, "solved" if s.status else "FAILED: " + s.message, f"{s.cost:.8g}", s.iterations,
                   s.gradient_evaluations, f"{s.seconds:.2f}", f"{np.max(np.abs(s.x[-1] - goal)):.1e}"]
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
    report.paragraph("The accuracy checks use J + Σ h_i(x(T)) with unit weights at the same controls, whose "
                     "gradient does not vanish there:")
    report.preformatted(checked.table())
    report.figure(checked.plot(panels=("gap",)), "gradient_vs_dt.png",
                  f"Relative gap adjoint − BPTT against dt: slope {checked.slope:.2f} (RK4: 4)")
    return {"N": problem.N, "costs": {k: s.cost for k, s in sols.items()},
            "iterations": {k: s.iterations for k, s in sols.items()},
            "status": {k: bool(s.status) for k, s in sols.items()}, "cost_gap": cost_gap,
            "control_gap": control_gap, "gradient_gaps": gaps, "fd_error": checked.fd_error,
            "steps": [int(k) for k in checked.steps], "gaps_vs_dt": checked.gaps[:, 0].tolist(), "slope": checked.slope}


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
    from potentials.reference_data import generate_emt_dataset, held_out_split, load_dataset
    from potentials.training import TrainConfig, evaluate, prepare, train

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
                     f"is trained on the energies and forces of {history.training_structures} of the rest "
                     f"({history.validation_structures} more choose the best epoch) with Adam for "
                     f"{len(history.train_loss)} epochs "
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
    return {"structures": n, "training_structures": history.training_structures,
            "validation_structures": history.validation_structures, "held_out_structures": n_test,
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

    from . import __version__
    from .files import atomic_folder, pyplot, write_atomic
    from .report import Report

    pyplot()  # the report's figures are files: no display needed

    final = pathlib.Path(args.out).resolve()
    size = _DEMO_SIZES["quick" if args.quick else "full"]
    # everything is written into a temporary folder inside --out and moved in at the end,
    # results.json last: an interrupted run leaves the previous report as it was
    with atomic_folder(final, last=("results.json",)) as folder:
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
        report.write()
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed in {seconds['total']:.1f} s")
    print(f"wrote the report to {final / 'report.md'} (and report.html, results.json and the figures beside it)")
    return 1 if failed else 0


def _control(args: argparse.Namespace) -> int:
    """Solve a ready optimal control problem; print the result, optionally plot it."""
    from trajectories import SYSTEMS, solve

    if args.sweep:
        return _control_sweep(args)
    if args.method == "collocation" and args.solver == "scipy":
        raise UsageError("--method collocation is solved by --solver ip or ipopt, not scipy")
    problem = SYSTEMS[args.system](N=args.steps) if args.steps is not None else SYSTEMS[args.system]()
    options = {"verbose": True} if args.verbose and args.solver != "scipy" and args.method != "pontryagin" else {}
    sol = solve(problem, method=args.method, solver=args.solver, gradient=args.gradient, **options)
    print(f"{problem.name} (N = {problem.N}, {problem.scheme}): {sol}")
    if sol.status:
        print("final state: " + ", ".join(f"{n} = {v:.6g}" for n, v in zip(problem.x_names, sol.x[-1])))
    if args.plot:
        sol.plot(args.plot, names=(problem.x_names, problem.u_names))
        print(f"wrote {args.plot}")
    if not sol.status:
        raise ComputationFailed(sol.message)
    return 0


def _control_sweep(args: argparse.Namespace) -> int:
    """diffsim control SYSTEM --sweep NAME=a:b:n [--starts K]: a table and a figure; exits 1 if a
    grid point has no converged start."""
    import numpy as np

    from trajectories import SYSTEMS, ProblemError
    from trajectories.sweep import sweep

    from .errors import DiffsimError

    grid = {}
    for spec in args.sweep:
        try:
            name, rng = spec.split("=")
            a, b, n = rng.split(":")
            grid[name] = np.linspace(float(a), float(b), int(n))
        except ValueError:
            print(f"error: --sweep {spec!r}: write NAME=start:stop:count, e.g. T=2:6:5", file=sys.stderr)
            return 2
    fixed = {"N": args.steps} if args.steps is not None else {}
    options = {"gradient": args.gradient}  # as a single solve of the command takes them
    if getattr(args, "solver", None):
        options["solver"] = args.solver
    try:
        with _cluster_client(args) as client:
            result = sweep(SYSTEMS[args.system], grid, starts=args.starts, method=args.method, fixed=fixed,
                           client=client, **options)
    except (ProblemError, DiffsimError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.table())
    if args.plot:
        result.plot(args.plot)
        print(f"wrote {args.plot}")
    unsolved = [p for p, k in zip(result.points, result.best_start()) if k < 0]
    if unsolved:
        print(f"error: no start converged at {len(unsolved)} of {len(result.points)} points", file=sys.stderr)
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
    failed = [k for k, s in (result.solutions or {}).items() if not s.status]
    if failed:
        raise ComputationFailed(f"the optimisation with {', '.join(failed)} gradients did not converge")
    return 0


def _potential_generate(args: argparse.Namespace) -> int:
    """EMT-labelled reference data (MD, rattled, strained, vacancies) to an ase.db or extxyz file."""
    from potentials.reference_data import generate_emt_dataset

    quick = dict(temperatures=(300.0, 900.0), md_samples=10, rattled=5, strained=5, vacancies=5) \
        if args.quick else dict(temperatures=tuple(args.temperatures), md_samples=args.md_samples)
    # on workers each task's rows are committed as it finishes, and a database left by an
    # interrupted run is resumed; a fresh run in one process makes the file appear only when complete
    import os
    import pathlib

    resume = bool(args.workers or args.scheduler or os.environ.get("DIFFSIM_SCHEDULER")) or \
        pathlib.Path(args.out).exists()
    with _cluster_client(args) as client:
        n = generate_emt_dataset(args.out, args.element, size=(args.size,) * 3, seed=args.seed, client=client,
                                 resume=resume, **quick)
    print(f"wrote {n} EMT-labelled {args.element} configurations to {args.out}")
    return 0


def _potential_train(args: argparse.Namespace) -> int:
    """Train a potential (or a committee with --ensemble K) on energies, forces and stress."""
    from potentials.committee import members_folder, remove_members, train_committee
    from potentials.e0s import parse_e0s
    from potentials.figures import learning_curve
    from potentials.model import ACSFModel
    from potentials.painn import PaiNNModel
    from potentials.reference_data import load_dataset
    from potentials.training import TrainConfig, train

    _distinct_paths(args, "data", "out", "checkpoint", "curve", "valid_file", "test_file")
    if (args.workers or args.scheduler) and args.ensemble < 2:
        raise UsageError("--workers/--scheduler train the members of a committee in parallel: add --ensemble K "
                         "(K >= 2); one model trains in one process")
    keys = _label_keys(args)
    frames = load_dataset(args.data, keys)
    valid = load_dataset(args.valid_file, keys) if args.valid_file else None
    test = load_dataset(args.test_file, keys) if args.test_file else None
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})

    def make(seed):
        if args.model == "painn":
            return PaiNNModel(elements, features=args.features, layers=args.layers, cutoff=args.cutoff, seed=seed)
        return ACSFModel(elements, hidden=tuple(args.hidden), seed=seed)

    rate = args.learning_rate or (2e-3 if args.model == "painn" else 5e-3)
    config = TrainConfig(epochs=10 if args.quick else args.epochs, batch_size=args.batch_size, learning_rate=rate,
                         seed=args.seed, checkpoint=args.checkpoint, optimizer=args.optimizer,
                         energy_weight=args.energy_weight, force_weight=args.forces_weight,
                         stress_weight=args.stress_weight, stage_two=args.stage_two if args.stage_two < 1 else None,
                         stage_two_energy_weight=args.stage_two_energy_weight,
                         stage_two_force_weight=args.stage_two_forces_weight,
                         stage_two_stress_weight=args.stage_two_stress_weight,
                         config_type_weights=_json_mapping(args.config_type_weights, "--config-type-weights"),
                         schedule=args.schedule, ema_decay=args.ema_decay or None, clip_norm=args.clip_norm or None,
                         validation_fraction=args.valid_fraction, keys=keys, max_seconds=args.max_seconds,
                         e0s=parse_e0s(args.E0s) if args.E0s else None)
    if args.ensemble > 1:
        def report(k, h):
            print(f"committee member {k + 1}/{args.ensemble}: {len(h.train_loss)} epochs, {h.seconds:.1f} s")

        with _cluster_client(args) as client:  # members as cluster tasks; finished ones kept beside --out
            model, histories = train_committee(make, frames, config, size=args.ensemble, validation=valid, test=test,
                                               progress=report, client=client,
                                               members_dir=members_folder(args.out))
    else:
        model = make(args.seed)
        histories = [train(model, frames, config, validation=valid, test=test)]
        h0 = histories[0]
        if h0.resumed_from:
            done = h0.resumed_from >= config.epochs or (h0.stopped_early and not h0.seconds)
            print(f"resumed {args.checkpoint} at epoch {h0.resumed_from} of {config.epochs}"
                  + ("; it had finished, so nothing was left to train" if done else ""))
    model.save(args.out)
    if args.ensemble > 1:
        remove_members(members_folder(args.out))  # the committee file now holds them
    history = histories[0]
    seconds = sum(h.seconds for h in histories)
    what = f"a committee of {args.ensemble}" if args.ensemble > 1 else "the model"
    reference = (model.members[0] if args.ensemble > 1 else model).reference
    counted = (f"{history.training_structures} structures ({history.validation_structures} more held out for "
               "validation)") if history.training_structures else f"{len(frames)} structures"
    print(f"trained {what} on {counted} in {seconds:.1f} s; reference energies (E0s): "
          + ", ".join(f"{s} {e:.4f} eV" for s, e in reference.items()))
    for k, h in enumerate(histories):
        if args.ensemble > 1:
            print(f"member {k + 1}:")
        print(h.table())
    print(f"wrote {args.out}")
    if args.curve:
        learning_curve(history, args.curve)
        print(f"wrote {args.curve}")
    return 0


def _potential_evaluate(args: argparse.Namespace) -> int:
    """Energy, force and stress errors of a model on a dataset, per config_type."""
    from potentials.model import load_model

    model = load_model(args.model_file)
    from potentials.metrics import error_table, errors
    from potentials.reference_data import load_dataset
    from potentials.structures import prepare

    keys = _label_keys(args)
    frames = load_dataset(args.data, keys)
    table = {"data": errors(model, prepare(model, frames, keys, args.data))}
    row = table["data"].get("all", next(iter(table["data"].values())))
    print(f"{len(frames)} structures: energy MAE {row['energy_mae']:.2f} meV/atom, force MAE {row['forces_mae']:.1f} "
          "meV/Å")
    print(error_table(table))
    if args.plot:
        from potentials.figures import force_parity, predicted_forces

        force_parity(*predicted_forces(model, frames), args.plot, title="held-out")
        print(f"wrote {args.plot}")
    return 0


def _potential_validate(args: argparse.Namespace) -> int:
    """The model's physical properties beside a reference calculator."""
    model = _model_or_calculator(args.model_file)
    from potentials.validation import validate

    elements = args.elements or getattr(model, "symbols", None)
    if not elements:
        raise ValueError(f"{args.model_file} does not say which elements it covers: give --elements")
    result = validate(model, args.reference, elements=elements, relax=not args.no_relax,
                      surfaces=not args.no_surfaces)
    print(f"{args.model_file} beside {args.reference} (fcc; vacancy and surfaces "
          f"{'unrelaxed' if args.no_relax else 'relaxed'}):")
    print(result.table())
    if args.plot:
        result.plot(args.plot)
        print(f"wrote {args.plot}")
    return 0


def _potential_select(args: argparse.Namespace) -> int:
    """The frames of a trajectory where a committee disagrees most."""
    from potentials.model import load_model

    model = load_model(args.model_file)
    from ase.io import read

    from diffsim.files import atomic_path
    from potentials.committee import select_uncertain

    if not hasattr(model, "members"):
        raise ValueError(f"{args.model_file} is a single model; selecting by uncertainty needs a committee: "
                         "train one with 'diffsim potential train --ensemble K'")
    try:
        frames = read(args.trajectory, index=":")
    except FileNotFoundError:
        raise FileNotFoundError(f"{args.trajectory}: no such trajectory file") from None
    except Exception as exc:
        raise ValueError(f"{args.trajectory}: cannot read it as a trajectory ({type(exc).__name__}: {exc})") from exc
    picked, scores = select_uncertain(model, frames, args.n, min_separation=args.min_separation,
                                      threshold=args.threshold)
    print(f"{len(frames)} frames; force spread (max over atoms) from {scores.min():.3f} to {scores.max():.3f} eV/Å")
    for k in picked:
        print(f"  frame {k}: {scores[k]:.3f} eV/Å")
    chosen = []
    for k in picked:
        atoms = frames[k].copy()
        atoms.calc = None
        atoms.info["committee_force_std"] = float(scores[k])
        atoms.info["source_frame"] = int(k)
        chosen.append(atoms)
    if args.label:
        from potentials.reference_data import label_frames
        from potentials.validation import calculator_factory

        chosen = label_frames(chosen, calculator_factory(args.label))
    from ase.io import write

    with atomic_path(args.out) as tmp:
        write(tmp, chosen, format="extxyz")
    print(f"wrote {len(chosen)} frames to {args.out}" + (f", labelled by {args.label}" if args.label else
                                                         " (unlabelled: label them, then add them to the data)"))
    return 0


def _potential_md(args: argparse.Namespace) -> int:
    """Molecular dynamics with a model (NVE, NVT or NPT), checked against EMT where EMT applies."""
    from potentials.md import md_report
    from potentials.model import load_model

    model = load_model(args.model_file)
    atoms = _md_structure(args, model)
    if args.replicas:
        return _md_replicas(args, model, atoms)
    report = md_report(atoms, model, ensemble=args.ensemble, temperature_K=args.temperature, steps=args.steps,
                       timestep_fs=args.timestep, pressure_GPa=args.pressure, plot=args.plot, progress=True,
                       uncertainty_threshold=args.uncertainty, stop_on_uncertainty=args.stop_on_uncertainty)
    print(report["summary"])
    _report_uncertainty(report["run"], args)
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def _md_structure(args: argparse.Namespace, model):
    """The structure ``potential md`` runs: --structure, or the default crystal of a one-element model."""
    if args.structure:
        from ase.io import read

        try:
            atoms = read(args.structure)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise UsageError(f"{args.structure}: not a structure ASE can read ({type(exc).__name__}: {exc}); give "
                             "an .xyz, .extxyz, .cif, POSCAR, .traj or another ASE format") from None
        if isinstance(atoms, list):
            atoms = atoms[-1]
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(model.symbols))
        if unknown:
            raise UsageError(f"{args.structure} has {', '.join(unknown)}, which the model does not know (it was "
                             f"trained on {', '.join(model.symbols)})")
        return atoms
    if len(model.symbols) > 1:
        raise UsageError(f"the model covers {len(model.symbols)} elements ({', '.join(model.symbols)}): give the "
                         "structure to run with --structure FILE (any file ASE reads, e.g. an extxyz from "
                         "'diffsim potential generate --element " + "".join(model.symbols) + " --out a.xyz')")
    from ase.build import bulk

    try:
        atoms = bulk(model.symbols[0], cubic=True)
    except Exception:
        try:
            atoms = bulk(model.symbols[0])
        except Exception:
            raise UsageError(f"ASE has no reference crystal for {model.symbols[0]}: give --structure FILE") from None
    return atoms.repeat((args.size,) * 3)


def _md_replicas(args: argparse.Namespace, model, atoms) -> int:
    """diffsim potential md --replicas K --temperatures ...: ensemble averages with error bars."""
    from potentials.replicas import run_replicas

    try:
        temperatures = [float(t) for t in args.temperatures.split(",")] if args.temperatures else [args.temperature]
    except ValueError:
        raise ValueError(f"--temperatures takes kelvins separated by commas, e.g. 300,600,900; got "
                         f"{args.temperatures!r}") from None
    with _cluster_client(args) as client:
        ens = run_replicas(model, atoms, temperatures, replicas=args.replicas, steps=args.steps,
                           seed=getattr(args, "seed", None) or 0, client=client)
    print(f"{len(atoms)} atoms, {args.replicas} replicas per temperature, {args.steps} steps of 2 fs "
          "(NVT for g(r), MSD and D; NVE for the drift); mean ± standard error:")
    print(ens.table())
    if args.plot:
        ens.plot(args.plot)
# ---------------------------------------------------------------- potential train, evaluate, validate, select


def _label_keys(args):
    from potentials.labels import LabelKeys

    return LabelKeys(energy=args.energy_key, forces=args.forces_key, stress=args.stress_key, virials=args.virials_key)


def _json_mapping(text: str | None, option: str) -> dict | None:
    import json

    if text is None:
        return None
    try:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError
        return {str(k): float(v) for k, v in value.items()}
    except (ValueError, TypeError):
        raise ValueError(f"{option} must be a JSON mapping such as '{{\"md\": 1.0, \"strain\": 5.0}}', "
                         f"got {text!r}") from None


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    """--workers / --scheduler: where a command's independent tasks run (issue 17)."""
    parser.add_argument("--workers", type=int, metavar="N",
                        help="run the tasks on N local worker processes (Dask; pip install 'diffsim[cluster]')")
    parser.add_argument("--scheduler", metavar="ADDR",
                        help="run the tasks on the Dask scheduler at ADDR, e.g. tcp://host:8786 "
                             "(default $DIFFSIM_SCHEDULER; without either, here in one process)")


def _cluster_client(args: argparse.Namespace):
    """A Dask client for --workers/--scheduler/$DIFFSIM_SCHEDULER, or a context holding None (run here)."""
    import contextlib
    import os

    if args.scheduler or args.workers or os.environ.get("DIFFSIM_SCHEDULER"):
        from .cluster import client

        return client(scheduler=args.scheduler, workers=args.workers)
    return contextlib.nullcontext(None)
def _model_or_calculator(spec: str):
    """A model file, or a calculator name ('emt', 'ase.calculators.emt.EMT') for validate."""
    import pathlib

    from potentials.model import load_model

    if spec.endswith(".npz") or pathlib.Path(spec).exists():
        return load_model(spec)
    return spec


def _report_uncertainty(run, args) -> None:
    if run.uncertainty is None:
        return
    print(f"committee force spread during NVE: max {run.uncertainty.max():.3f} eV/Å")
    if args.uncertainty is not None:
        print(f"steps above {args.uncertainty} eV/Å: {len(run.flagged)}"
              + (f"; stopped at step {run.stopped_at}" if run.stopped_at is not None else ""))


def _add_training_options(tr) -> None:
    """The loss, data and schedule options of ``potential train``."""
    loss = tr.add_argument_group("loss")
    loss.add_argument("--energy-weight", type=float, default=100.0, help="on (eV/atom)² (default 100)")
    loss.add_argument("--forces-weight", type=float, default=10.0, help="on (eV/Å)² (default 10)")
    loss.add_argument("--stress-weight", type=float, default=100.0,
                      help="on (eV/Å³)², where the data has stress (default 100; 0: not trained)")
    loss.add_argument("--stage-two", type=float, default=0.75, metavar="FRACTION",
                      help="from this fraction of the epochs (or of --max-seconds) on, the stage-two weights: forces "
                           "lead, then energies are refined, as MACE's stage two (default 0.75; 1: one stage)")
    for term, default in (("energy", 1000.0), ("forces", 1.0), ("stress", 100.0)):
        loss.add_argument(f"--stage-two-{term}-weight", type=float, default=default, help=f"(default {default:g})")
    loss.add_argument("--config-type-weights", metavar="JSON",
                      help="weights by the config_type in each record's info, e.g. '{\"md\": 1, \"strain\": 5}'")
    data = tr.add_argument_group("data")
    for kind in ("energy", "forces", "stress", "virials"):
        data.add_argument(f"--{kind}-key", metavar="KEY",
                          help=f"where records keep their {kind} (default: the calculator's results, then "
                               f"REF_{kind} and other common names)")
    data.add_argument("--valid-file", metavar="FILE", help="validation set (default: a random --valid-fraction)")
    data.add_argument("--valid-fraction", type=float, default=0.1, help="random validation fraction (default 0.1)")
    data.add_argument("--test-file", metavar="FILE", help="test set, scored at the end only")
    data.add_argument("--E0s", metavar="E0S",
                      help="reference energies: 'isolated' (isolated-atom frames in the data), 'fit' (least squares) "
                           "or a mapping '{\"Cu\": -0.007}' (default: isolated atoms if present, else fit)")
    sched = tr.add_argument_group("optimisation")
    sched.add_argument("--schedule", choices=["exponential", "cosine", "plateau"], default="exponential",
                       help="learning-rate schedule (default exponential)")
    sched.add_argument("--ema-decay", type=float, default=0.99, help="EMA of the weights (default 0.99; 0: off)")
    sched.add_argument("--clip-norm", type=float, default=10.0, help="gradient-norm clipping (default 10; 0: off)")
    sched.add_argument("--max-seconds", type=float, help="stop after this much training time")
    sched.add_argument("--ensemble", type=int, default=1, metavar="K",
                       help="train a committee of K models (seeds and splits differ), stored in one file")


def _distinct_paths(args: argparse.Namespace, *names: str) -> None:
    """Refuse one file given for two roles (the model would overwrite the dataset, say)."""
    import pathlib

    seen: dict = {}
    for name in names:
        value = getattr(args, name, None)
        if value:
            key = pathlib.Path(value).resolve()
            if key in seen:
                raise UsageError(f"--{seen[key]} and --{name} are the same file ({value}): give each its own path")
            seen[key] = name


# ---------------------------------------------------------------- errors, argument types, the wrapper


class UsageError(DiffsimError):
    """A mistake in the command line or its input files: one line on stderr, exit status 2."""


_OS_ADVICE = {errno.ENOENT: "no such file or folder: check the path",
              errno.EACCES: "permission denied: choose a place you can write to, or change its permissions",
              errno.EPERM: "not permitted: choose another place",
              errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
              errno.EISDIR: "is a folder: give a file name",
              errno.ENOSPC: "the disk is full: free some space or write elsewhere",
              errno.EROFS: "a read-only file system: write elsewhere",
              errno.EEXIST: "already exists and is in the way: remove it or choose another path",
              errno.ENAMETOOLONG: "the name is too long: choose a shorter path"}


def os_error_message(exc: OSError) -> str:
    """One line for an OS error: the path, what went wrong and what to do.

    >>> os_error_message(FileNotFoundError(2, "No such file or directory", "/no/such/file.npz"))
    '/no/such/file.npz: no such file or folder: check the path'
    """
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = _OS_ADVICE.get(exc.errno, f"{exc.strerror or exc}" if exc.errno else str(exc))
    return f"{where}: {what}" if where else what


def _user_error_types() -> tuple:
    """Exceptions that mean a mistake in the input (exit 2): diffsim's own, and the ValueErrors of
    the applications' checks of arguments and files (DatasetError, ModelFileError, ...)."""
    from .errors import DiffsimError

    return (UsageError, DiffsimError, ValueError)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _run(func, args: argparse.Namespace) -> int:
    """Run one subcommand under the one error policy of the command: a user's mistake or an OS
    error is one line on stderr and exit status 2, a failed computation one line and 1, an
    interruption 130 (SIGINT) or 143 (SIGTERM), a closed output pipe 141; never a traceback (set DIFFSIM_TRACEBACK=1 to
    see one for an unexpected error)."""
    import os
    import warnings

    name = getattr(args, "command_name", "diffsim")

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{name}: warning: {_one_line(message)}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("once")  # each distinct warning once, on one line
            warnings.showwarning = one_line_warning
            code = func(args)
        return 0 if code is None else int(code)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"{name}: terminated by {exc}; nothing half-written was left behind", file=sys.stderr)
        return 143
    except ComputationFailed as exc:
        print(f"{name}: failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into a reader that stopped (| head): not an error to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # the shell's status for a process ended by SIGPIPE
    except OSError as exc:
        print(f"{name}: error: {_one_line(os_error_message(exc))}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"{name}: error: {_one_line(exc)}; this needs an optional package: pip install "
              f"{exc.name or 'it'}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{name}: failed: out of memory; try a smaller problem (fewer atoms, steps or structures)",
              file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("DIFFSIM_TRACEBACK"):
            raise
        if isinstance(exc, _user_error_types()):
            print(f"{name}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        print(f"{name}: failed: {type(exc).__name__}: {_one_line(exc)} (set DIFFSIM_TRACEBACK=1 to see where)",
              file=sys.stderr)
        return 1


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where the help is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _number(kind, least=None, above=None, what="a number"):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        if (least is not None and value < least) or (above is not None and value <= above):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


count = _number(int, least=1, what="a whole number ≥ 1")
nonnegative = seed_type = _number(int, least=0, what="a whole number ≥ 0")
positive = _number(float, above=0.0, what="a positive number")
nonnegative_float = _number(float, least=0.0, what="a number ≥ 0")


def output_file(text: str) -> str:
    """An argparse type: a file that can be written (checked now, before any long work)."""
    from .files import check_writable

    try:
        check_writable(text)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {os_error_message(exc)}") from None
    return text


def output_folder(text: str) -> str:
    """An argparse type: a folder that exists or can be made, and can be written."""
    from .files import check_writable

    try:
        check_writable(text, folder=True)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write into {text}: {os_error_message(exc)}") from None
    return text


def input_file(text: str) -> str:
    """An argparse type: an existing, readable file."""
    import os

    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: a folder, not a file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable (permission denied)")
    return text


def dataset_output(text: str) -> str:
    """An argparse type: a writable .db, .xyz or .extxyz file."""
    if not text.endswith((".db", ".xyz", ".extxyz")):
        raise argparse.ArgumentTypeError(f"{text}: a dataset file must end in .db (ase.db), .xyz or .extxyz")
    return output_file(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``diffsim`` command. A subcommand is a subparser whose
    ``func`` default runs it; :func:`main` runs every one under the same error handling."""
    from . import __version__

    parser = _Parser(
        prog="diffsim",
        description="Differentiable physics on a CPU: exact gradients, compiled loops.",
        epilog="Start with 'diffsim demo'. 'diffsim COMMAND --help' describes a command's options.")
    parser.add_argument("--version", action="version", version=f"diffsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    demo = sub.add_parser("demo", help="run the main job: control and a learned potential, checked, in a report",
                          description=_demo.__doc__)
    demo.add_argument("--quick", action="store_true",
                      help="a smaller, faster run (about 20 s with warm caches; the full run takes a few minutes; "
                           "the first run on a machine also compiles Numba kernels)")
    demo.add_argument("--out", metavar="DIR", default="diffsim-demo-report", type=output_folder,
                      help="folder for the report, its figures, data and model (default ./diffsim-demo-report)")
    demo.set_defaults(func=_demo)

    from trajectories.systems import SYSTEMS  # names only; cheap

    control = sub.add_parser("control", help="solve a ready optimal control problem",
                             description=_control.__doc__)
    control.add_argument("system", choices=sorted(SYSTEMS), help="which problem")
    control.add_argument("--method", choices=["multiple", "single", "collocation", "pontryagin"], default="multiple",
                         help="direct multiple shooting (default), single shooting, Hermite-Simpson collocation, "
                              "or Pontryagin's BVP")
    control.add_argument("--solver", choices=["ip", "ipopt", "scipy"], default="ip",
                         help="the stage-wise interior-point method (default), IPOPT (the [ipopt] extra), or scipy")
    control.add_argument("--gradient", choices=["bptt", "checkpointed", "adjoint"], default=None,
                         help="with --solver scipy --method single: how the rollout is differentiated (default bptt)")
    control.add_argument("--verbose", action="store_true", help="print the solver's iteration table")
    control.add_argument("--steps", type=count, help="number of control intervals N (default: the system's)")
    control.add_argument("--plot", metavar="FILE", type=output_file,
                         help="write states, controls and costates to FILE (png, pdf)")
    control.add_argument("--sweep", action="append", metavar="NAME=a:b:n",
                         help="solve over n values of the system's parameter NAME from a to b (repeat for a grid), "
                              "e.g. T=2:6:5; --plot draws cost against it")
    control.add_argument("--starts", type=count, default=1,
                         help="with --sweep: starting guesses per point (0: the system's; others random; default 1)")
    _cluster_options(control)
    control.set_defaults(func=_control)

    comp = sub.add_parser("compare", help="BPTT vs continuous adjoint on a ready problem", description=_compare.__doc__)
    comp.add_argument("system", choices=sorted(SYSTEMS), help="which problem")
    comp.add_argument("--steps", type=count, help="number of control intervals N ≥ 1 (default: the system's)")
    comp.add_argument("--plot", metavar="FILE", type=output_file, help="write the comparison figure to FILE")
    comp.add_argument("--no-optimize", action="store_true", help="compare gradients only, do not optimise")
    comp.set_defaults(func=_compare)

    from trajectories.mpc_cli import add_mpc_parser

    add_mpc_parser(sub)

    pot = sub.add_parser("potential", help="learned interatomic potentials: generate, train, evaluate, validate, "
                                           "select, md",
                         description="Learned interatomic potentials: generate EMT data, train (committees too), "
                                     "evaluate, validate physical properties, select uncertain frames, run MD.")
    act = pot.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    gen = act.add_parser("generate", help="EMT-labelled reference data (MD, rattled, strained, vacancies) to an ase.db",
                         description=_potential_generate.__doc__)
    gen.add_argument("--element", default="Cu", help="an EMT element or alloy, e.g. Cu, CuAu (default Cu)")
    gen.add_argument("--out", default="emt.db", type=dataset_output,
                     help="the file to write: .db (ase.db) or .xyz/.extxyz (default emt.db)")
    gen.add_argument("--size", type=count, default=3, help="fcc cubic cell repeated size³ times (default 3: 108 atoms)")
    gen.add_argument("--temperatures", type=positive, nargs="+", default=[300.0, 600.0, 900.0, 1200.0],
                     help="Langevin MD temperatures in K (default 300 600 900 1200)")
    gen.add_argument("--md-samples", type=nonnegative, default=50, help="MD samples per temperature (default 50)")
    gen.add_argument("--seed", type=seed_type, default=0, help="random seed (default 0)")
    gen.add_argument("--quick", action="store_true", help="a small dataset")
    _cluster_options(gen)
    gen.set_defaults(func=_potential_generate)
    tr = act.add_parser("train", help="train a potential on energies and forces", description=_potential_train.__doc__)
    tr.add_argument("--data", required=True, type=input_file, help="ase.db or extxyz with energies and forces")
    tr.add_argument("--out", default="model.npz", type=output_file, help="the model file to write (default model.npz)")
    tr.add_argument("--model", choices=["acsf", "painn"], default="acsf",
                    help="acsf: per-element networks on symmetry functions (default); painn: equivariant message "
                         "passing")
    tr.add_argument("--hidden", type=count, nargs="+", default=[32, 32],
                    help="acsf: hidden layer widths (default 32 32)")
    tr.add_argument("--features", type=count, default=32, help="painn: feature width (default 32)")
    tr.add_argument("--layers", type=count, default=2, help="painn: interaction layers (default 2)")
    tr.add_argument("--cutoff", type=positive, default=4.5, help="painn: pair cutoff in Å (default 4.5)")
    tr.add_argument("--epochs", type=count, default=200, help="epochs (Adam) or iterations (L-BFGS)")
    tr.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam",
                    help="Adam on minibatches (default) or full-batch L-BFGS")
    tr.add_argument("--batch-size", type=count, default=8, help="structures per Adam step (default 8)")
    tr.add_argument("--learning-rate", type=positive,
                    help="Adam's initial learning rate (default 5e-3 for acsf, 2e-3 for painn)")
    tr.add_argument("--checkpoint", type=output_file,
                    help="save the whole training state here after every epoch (one file, written atomically) and "
                         "resume from it; a checkpoint of another model, other options or other data is refused")
    tr.add_argument("--curve", metavar="FILE", type=output_file, help="write the learning curve to FILE")
    tr.add_argument("--seed", type=seed_type, default=0, help="seed of the weights and the data split (default 0)")
    tr.add_argument("--quick", action="store_true", help="10 epochs")
    _add_training_options(tr)
    _cluster_options(tr)
    tr.set_defaults(func=_potential_train)
    ev = act.add_parser("evaluate", help="energy and force errors of a model on a dataset",
                        description=_potential_evaluate.__doc__)
    ev.add_argument("model_file", type=input_file, help="a model written by 'train'")
    ev.add_argument("--data", required=True, type=input_file,
                    help="ase.db or extxyz with reference energies and forces")
    ev.add_argument("--plot", metavar="FILE", type=output_file, help="write a force parity plot")
    for kind in ("energy", "forces", "stress", "virials"):
        ev.add_argument(f"--{kind}-key", metavar="KEY", help=f"where records keep their {kind}")
    ev.set_defaults(func=_potential_evaluate)
    va = act.add_parser("validate", help="lattice constant, bulk modulus, elastic constants, vacancy and surface "
                                         "energies: the model beside a reference calculator")
    va.add_argument("model_file", help="a model written by 'train' (or a calculator name, e.g. emt)")
    va.add_argument("--reference", default="emt",
                    help="'emt' or an importable ASE calculator, e.g. ase.calculators.emt.EMT (default emt)")
    va.add_argument("--elements", nargs="+", help="fcc elements to validate (default: the model's)")
    va.add_argument("--plot", metavar="FILE", type=output_file, help="write E(V) and the relative differences to FILE")
    va.add_argument("--no-relax", action="store_true", help="vacancy and surfaces unrelaxed (faster)")
    va.add_argument("--no-surfaces", action="store_true", help="skip the surface energies")
    va.set_defaults(func=_potential_validate)
    se = act.add_parser("select", help="the frames of a trajectory where a committee disagrees most, for labelling")
    se.add_argument("model_file", help="a committee written by 'train --ensemble K'")
    se.add_argument("--trajectory", required=True, type=input_file, help="any file ase.io reads (.traj, .xyz)")
    se.add_argument("--n", type=count, default=10, help="how many frames (default 10)")
    se.add_argument("--min-separation", type=int, default=1, help="frames between two picks, at least (default 1)")
    se.add_argument("--threshold", type=float, help="only frames whose force spread passes this (eV/Å)")
    se.add_argument("--label", metavar="CALC", help="label the picks with this calculator (e.g. emt)")
    se.add_argument("--out", default="selected.xyz", type=output_file,
                    help="extxyz file to write (default selected.xyz)")
    se.set_defaults(func=_potential_select)

    md = act.add_parser("md", help="MD with a model (NVE, NVT or NPT), checked against EMT where EMT applies",
                        description=_potential_md.__doc__ + " Without --structure, a one-element model runs its "
                        "element's ASE reference crystal; a model of several elements needs --structure.")
    md.add_argument("model_file", type=input_file, help="a model written by 'train'")
    md.add_argument("--structure", metavar="FILE", type=input_file,
                    help="the starting structure: any file ASE reads (xyz, extxyz, cif, POSCAR, traj...; the last "
                         "frame of a multi-frame file)")
    md.add_argument("--ensemble", choices=["nve", "nvt", "npt"], default="nve",
                    help="nve: velocity Verlet (reports the energy drift, default); nvt: Langevin thermostat; "
                         "npt: Berendsen thermostat and barostat (needs a fully periodic structure)")
    md.add_argument("--temperature", type=positive, default=600.0,
                    help="initial (nve) or thermostat (nvt, npt) temperature in K (default 600)")
    md.add_argument("--pressure", type=_number(float, least=0.0, what="a pressure ≥ 0"), default=1e-4,
                    help="npt: pressure in GPa (default 1e-4, one bar)")
    md.add_argument("--steps", type=count, default=2000, help="MD steps (default 2000)")
    md.add_argument("--timestep", type=positive, default=2.0, help="time step in fs (default 2)")
    md.add_argument("--size", type=count, default=3,
                    help="without --structure: the reference crystal's cubic cell repeated size³ times (default 3)")
    md.add_argument("--plot", metavar="FILE", type=output_file, help="write g(r), MSD and the energy to FILE")
    md.add_argument("--replicas", type=count, metavar="K",
                    help="K independent replicas per temperature (with the learned model only): ensemble g(r), "
                         "MSD, diffusion coefficient and drift with error bars")
    md.add_argument("--temperatures", metavar="T1,T2,...", help="with --replicas: temperatures in K (default "
                    "--temperature)")
    _cluster_options(md)
    md.add_argument("--uncertainty", type=nonnegative_float, metavar="EV_PER_A",
                    help="committees: flag NVE steps whose force spread passes this (eV/Å)")
    md.add_argument("--stop-on-uncertainty", action="store_true", help="with --uncertainty: stop the run there")
    md.set_defaults(func=_potential_md)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diffsim`` console script: parse, then run the subcommand under
    :func:`_run` (every subcommand, present and future, gets the same error handling). SIGTERM
    and SIGHUP raise :class:`~diffsim.termination.Terminated` from the first statement on, so a
    run signalled at any point after its imports cleans up and exits 143."""
    try:
        with signals_raise():
            return _main(argv)
    except Terminated as exc:  # before a subcommand started (its own are reported by _run)
        print(f"diffsim: terminated by {exc}", file=sys.stderr)
        return 143


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported in one line
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.command_name = " ".join(["diffsim"] + [getattr(args, k) for k in ("command", "action")
                                                if getattr(args, k, None)])
    return _run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
