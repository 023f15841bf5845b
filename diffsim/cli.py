"""The ``diffsim`` command. Subcommands import what they need when they run, so ``--help``
is instant and the engine never depends on the application packages.

    diffsim demo            the main job: what the toolkit does, checked as it runs
    diffsim control SYSTEM  solve a ready optimal control problem
    diffsim compare SYSTEM  BPTT vs the continuous adjoint on it
    diffsim potential ...   generate EMT data, train, evaluate, run MD
    diffsim --version
"""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    """Differentiate numpy code, check it against closed forms and finite differences, and show
    the vanishing-gradient effect that motivates skip connections."""
    import numpy as np

    import diffsim as ds
    import diffsim.numpy as dnp

    t0 = time.perf_counter()
    print("diffsim demo: one reverse-mode engine\n")

    f = lambda x, y: dnp.log(x + dnp.exp(y / x))
    gx, gy = ds.grad(f, argnums=(0, 1))(1.0, 2.0)
    e2 = np.exp(2.0)
    print("1. f(x, y) = ln(x + exp(y/x)) at (1, 2)")
    print(f"   reverse mode  df/dx = {float(gx):+.15f}  df/dy = {float(gy):+.15f}")
    print(f"   closed form   df/dx = {(1 - 2 * e2) / (1 + e2):+.15f}  df/dy = {e2 / (1 + e2):+.15f}")

    rng = np.random.default_rng(0)
    A, X, B = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    G = ds.grad(lambda X: dnp.sum((A @ X - B) ** 2))(X)
    err = np.max(np.abs(G - 2 * A.T @ (A @ X - B)))
    print("\n2. gradient of ||AX - B||_F^2 against 2 A^T (AX - B)")
    print(f"   max abs difference {err:.1e}")

    print("\n3. check_grads (reverse and forward mode, to second order) on a small network")
    W = rng.standard_normal((3, 3))
    net = lambda W, x: dnp.sum(dnp.tanh(W @ x) ** 2) + dnp.linalg.slogdet(W @ W.T + dnp.eye(3))[1]
    ds.check_grads(net, (W, rng.standard_normal(3)), order=2)
    H = ds.hessian(lambda x: net(W, x))(np.ones(3))
    print(f"   passed; Hessian w.r.t. x is symmetric to {np.max(np.abs(H - H.T)):.1e}")

    depth, width = (20, 32) if args.quick else (50, 64)
    print(f"\n4. input-gradient norm through {depth} dense layers of width {width} (He initialisation)")
    x0 = rng.standard_normal(width)
    nets = {"sigmoid, plain": lambda x, p: 1 / (1 + dnp.exp(-(p[0] @ x))),
            "relu + skip": lambda x, p: x + p[1] @ dnp.maximum(p[0] @ x, 0.0) / np.sqrt(depth)}
    for name, layer in nets.items():
        params = [(rng.standard_normal((width, width)) * np.sqrt(2.0 / width),
                   rng.standard_normal((width, width)) * np.sqrt(1.0 / width)) for _ in range(depth)]

        def loss(x, params=params, layer=layer):
            for p in params:
                x = layer(x, p)
            return dnp.sum(x) / np.sqrt(width)

        print(f"   {name:15s} |dL/dx0| = {np.linalg.norm(ds.grad(loss)(x0)):.3e}")
    print("\n5. cart-pole rollout gradients in compiled loops (first run compiles; later runs load the cache)")
    from diffsim.ode import ODEProblem
    from trajectories.dynamics import cart_pole

    prob = ODEProblem(cart_pole, 4, 1, 4, running_cost=lambda x, u, p, t: 0.1 * dnp.sum(x * x) + u[0] ** 2,
                      terminal_cost=lambda x, p: 10.0 * dnp.sum(x * x))
    p = np.array([1.0, 0.1, 0.5, 9.81])
    x0 = np.array([0.0, 0.3, 0.0, 0.0])
    print("   N      |dJ/dU| bptt   checkpointed - bptt   adjoint - bptt   (relative)")
    for n in ((50, 100, 200) if args.quick else (50, 100, 200, 400, 800)):
        U = 0.5 * np.sin(np.linspace(0.0, 6.0, n))[:, None]
        b = prob.gradient(x0, U, p, T=2.0, method="bptt")
        c = prob.gradient(x0, U, p, T=2.0, method="checkpointed")
        a = prob.gradient(x0, U, p, T=2.0, method="adjoint")
        norm = np.linalg.norm(b.dU)
        print(f"   {n:<6d} {norm:12.6f}   {np.linalg.norm(c.dU - b.dU) / norm:18.1e}   "
              f"{np.linalg.norm(a.dU - b.dU) / norm:14.1e}")
    print("   (the adjoint is the continuous costate equation: its gap to BPTT falls like dt^4 with RK4)")
    print(f"\ndone in {time.perf_counter() - t0:.1f} s")
    return 0


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
    import numpy as np

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
            config = TrainConfig(epochs=10 if args.quick else args.epochs, batch_size=args.batch_size,
                                 learning_rate=args.learning_rate, seed=args.seed, checkpoint=args.checkpoint,
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
                from potentials.calculator import Calculator
                from potentials.figures import force_parity

                ref, pred = [], []
                for atoms in frames:
                    ref.append(atoms.get_forces())
                    a = atoms.copy()
                    a.calc = Calculator(model)
                    pred.append(a.get_forces())
                force_parity(np.concatenate(ref), np.concatenate(pred), args.plot, title="held-out")
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
        description="Differentiable physics on a CPU: exact gradients, compiled loops.")
    parser.add_argument("--version", action="version", version=f"diffsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the main job: the toolkit's capabilities, checked as they run",
                          description=_demo.__doc__)
    demo.add_argument("--quick", action="store_true", help="a smaller, faster run")
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

    pot = sub.add_parser("potential", help="learned interatomic potentials: generate, train, evaluate, md",
                         description=_potential.__doc__)
    act = pot.add_subparsers(dest="action", metavar="ACTION", required=True)
    gen = act.add_parser("generate", help="EMT-labelled reference data (MD, rattled, strained, vacancies) to an ase.db")
    gen.add_argument("--element", default="Cu", help="an EMT element or alloy, e.g. Cu, CuAu (default Cu)")
    gen.add_argument("--out", default="emt.db", help="the file to write: .db (ase.db) or .xyz/.extxyz (default emt.db)")
    gen.add_argument("--size", type=int, default=3, help="fcc cubic cell repeated size³ times (default 3: 108 atoms)")
    gen.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 600.0, 900.0, 1200.0])
    gen.add_argument("--md-samples", type=int, default=50, help="MD samples per temperature (default 50)")
    gen.add_argument("--seed", type=int, default=0)
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
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--learning-rate", type=float, default=5e-3)
    tr.add_argument("--checkpoint", help="save every epoch here and resume from it")
    tr.add_argument("--curve", metavar="FILE", help="write the learning curve to FILE")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--quick", action="store_true", help="10 epochs")
    ev = act.add_parser("evaluate", help="energy and force errors of a model on a dataset")
    ev.add_argument("model_file", help="a model written by 'train'")
    ev.add_argument("--data", required=True)
    ev.add_argument("--plot", metavar="FILE", help="write a force parity plot")
    md = act.add_parser("md", help="NVE drift and g(r)/MSD against EMT for an fcc crystal")
    md.add_argument("model_file", help="a model written by 'train'")
    md.add_argument("--temperature", type=float, default=600.0)
    md.add_argument("--steps", type=int, default=2000)
    md.add_argument("--size", type=int, default=3)
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
