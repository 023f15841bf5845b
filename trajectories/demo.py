"""The optimal control sections of ``diffsim demo`` (see :mod:`diffsim.demo`): the cart-pole
swing-up solved with BPTT and with continuous-adjoint gradients, the two compared as the grid is
refined, and the cart-pole held upright by MPC under pushes. Each returns (results, checks)."""

from __future__ import annotations

import numpy as np

from diffsim.demo import check

# the grids of the dt study: N for each refinement (--quick, full run)
CONTROL_STEPS = {"quick": (25, 50, 100, 200), "full": (25, 50, 100, 200, 400, 800)}
SWINGUP_GOAL = np.array([1.0, np.pi, 0.0, 0.0])  # the swing-up's final state: the cart 1 m on, the pole up


def control_section(report, size: str) -> tuple[dict, list]:
    """The cart-pole swing-up solved with BPTT and with continuous-adjoint gradients, and the two
    gradients compared as the grid is refined."""
    from . import compare, solve
    from .systems import cart_pole_swingup

    steps = CONTROL_STEPS[size]
    problem = cart_pole_swingup(N=100)
    sols = {}
    for g in ("bptt", "adjoint"):
        # the adjoint's gradient matches the discrete cost only to O(dt^4): ask the optimiser for what it can certify
        sols[g] = solve(problem, method="single", solver="scipy", gradient=g, tol=1e-8 if g == "adjoint" else 1e-12)
        print(f"   single shooting with {g} gradients: {sols[g]}")
    # accuracy of the gradients: J + Σ h_i(x(T)) with unit weights at the BPTT optimum (its gradient is
    # far from zero, so relative gaps mean something), resampled on finer and coarser grids for the
    # dt study; the costates at the optimum: the Lagrangian with the solver's multipliers
    checked = compare(problem, U=sols["bptt"].u, steps=steps, optimize=False)
    c = compare(problem, solution=sols["bptt"], steps=steps, optimize=False)
    c.solutions, c.controls = sols, "the BPTT optimum"
    results = _control_results(problem, sols, checked)
    print(f"   costs agree to {results['cost_gap']:.1e} (relative); adjoint vs BPTT gradient gap "
          f"{results['gradient_gaps']['adjoint']:.1e} at N = {problem.N}; order of the gap as dt shrinks "
          f"{checked.slope:.2f} (RK4: 4)")
    checks = _control_checks(problem, sols, checked, results)
    _control_report(report, problem, sols, checked, c, results)
    return results, checks


def _control_results(problem, sols: dict, checked) -> dict:
    """The numbers of the control section for results.json."""
    b, a = sols["bptt"], sols["adjoint"]
    gaps = {r["method"]: r["gap"] for r in checked.rows}
    return {"N": problem.N, "costs": {k: s.cost for k, s in sols.items()},
            "iterations": {k: s.iterations for k, s in sols.items()},
            "status": {k: bool(s.status) for k, s in sols.items()}, "cost_gap": abs(a.cost - b.cost) / abs(b.cost),
            "control_gap": float(np.max(np.abs(a.u - b.u))), "gradient_gaps": gaps, "fd_error": checked.fd_error,
            "steps": [int(k) for k in checked.steps], "gaps_vs_dt": checked.gaps[:, 0].tolist(),
            "slope": checked.slope}


def _control_checks(problem, sols: dict, checked, results: dict) -> list:
    """The truths of the control section: both solves reach the goal, the optima and gradients
    agree, BPTT matches finite differences, the gap falls at RK4's order."""
    checks: list = []
    cost_gap, gaps = results["cost_gap"], results["gradient_gaps"]
    for name, s in sols.items():
        err = float(np.max(np.abs(s.x[-1] - SWINGUP_GOAL))) if s.status else np.inf
        check(checks, f"cart-pole solved with {name} gradients (final-state error)", err, "< 1e-6",
              bool(s.status) and err < 1e-6)
    check(checks, "BPTT and adjoint optima: relative cost difference", cost_gap, "< 1e-4", cost_gap < 1e-4)
    check(checks, f"adjoint vs BPTT gradient, relative gap at N = {problem.N}", gaps["adjoint"], "< 1e-3",
          gaps["adjoint"] < 1e-3)
    check(checks, "checkpointed BPTT = BPTT (relative gap)", gaps["checkpointed"], "< 1e-12",
          gaps["checkpointed"] < 1e-12)
    check(checks, "BPTT against central finite differences", checked.fd_error, "< 1e-6", checked.fd_error < 1e-6)
    check(checks, "order of the adjoint-BPTT gap in dt (RK4)", checked.slope, "4 ± 0.5",
          abs(checked.slope - 4) < 0.5)
    return checks


def _control_report(report, problem, sols: dict, checked, c, results: dict) -> None:
    """The control section of the report: prose, the solves' table, figures, the gradient tables."""
    report.heading("2. Optimal control: cart-pole swing-up, BPTT and the continuous adjoint")
    report.paragraph(f"Kelly's cart-pole swing-up (move the cart 1 m and invert the pole in T = {problem.T:g} s, "
                     f"|F| ≤ 20 N, minimise ∫F² dt), N = {problem.N} RK4 intervals, solved by direct single shooting "
                     "twice: with BPTT gradients (the exact discrete adjoint) and with the continuous costate "
                     "equation integrated backward (the adjoint). They are the same computation seen from two "
                     "sides: their gradients differ by O(dt⁴) and both reach the same optimum.")
    report.table(["gradient", "status", "cost ∫F² dt", "iterations", "gradients", "wall time (s)",
                  "max |x(T) − goal|"],
                 [[name, "solved" if s.status else "FAILED: " + s.message, f"{s.cost:.8g}", s.iterations,
                   s.gradient_evaluations, f"{s.seconds:.2f}", f"{np.max(np.abs(s.x[-1] - SWINGUP_GOAL)):.1e}"]
                  for name, s in sols.items()])
    report.paragraph(f"The two optimal controls differ by at most {results['control_gap']:.2e} N; the costs by "
                     f"{results['cost_gap']:.1e} (relative).")
    names = (problem.x_names, problem.u_names)
    report.figure(sols["bptt"].plot(names=names), "cartpole_trajectory.png",
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


def mpc_section(report, size: str) -> tuple[dict, list]:
    """The demo's MPC section: the cart-pole held upright under pushes by MPC, beside the open-loop
    replay of a plan and beside the plan's DDP gains; the figure with the solve-time histogram."""
    from .ddp import ddp
    from .mpc import MPC
    from .regulation import mpc_task, plan_baselines

    steps, checks = 150, []
    ocp, plan_ocp, guess = mpc_task("cart_pole", steps)
    kicks = np.zeros((steps, 4))
    kicks[[20, 50, 80], 3] = [2.0, -2.0, 2.0]
    kicks[[35, 65], 2] = [1.0, -1.0]
    mpc = MPC(ocp, horizon=40, initial_states=guess)
    run = mpc.simulate(x0=ocp.x0, steps=steps, disturbance=kicks)
    plan = ddp(plan_ocp, X0=np.tile(guess, (steps + 1, 1)))
    common = dict(x0=ocp.x0, steps=steps, disturbance=kicks)
    others = plan_baselines(plan_ocp, plan, **common)
    tilt = {name: float(np.max(np.abs(r.x[:, 1] - np.pi))) for name, r in {"mpc": run, **others}.items()}
    median = float(np.median(run.solve_times[1:]))
    print(f"   MPC: {run}")
    check(checks, "MPC keeps the pole within 0.6 rad of upright under the pushes", tilt["mpc"], "< 0.6",
         run.status and tilt["mpc"] < 0.6)
    check(checks, "the open-loop replay of the plan falls (max tilt)", tilt["open loop"], "> π/2",
         tilt["open loop"] > np.pi / 2)
    report.heading("Model-predictive control: the cart-pole under pushes")
    report.paragraph(f"The cart-pole held upright by MPC: every 20 ms one warm real-time DDP iteration over a "
                     f"40-step (0.8 s) horizon, shifted from the last plan, with |F| ≤ 20 N. Five pushes hit the pole "
                     f"and the cart. Beside it, a plan over the whole run replayed open loop, and the same plan with "
                     f"its DDP feedback gains u = u_k + K_k(x − x_k). Median solve time per step "
                     f"{median * 1e6:.0f} µs ({1 / median:,.0f} Hz possible).")
    report.table(["controller", "max |θ − π| (rad)", "closed-loop cost", "status"],
                 [[name, f"{tilt[name]:.3g}", f"{r.cost:.4g}", "ok" if r.status else r.message]
                  for name, r in {"mpc": run, **others}.items()])
    report.figure(run.plot(others=others, names=(ocp.x_names, ocp.u_names)), "cartpole_mpc.png",
                  "Cart-pole MPC under pushes (solid) beside open-loop replay and DDP gains (dashed); "
                  "solve time per step")
    return {"max_tilt": tilt, "median_step_seconds": median, "cost": run.cost}, checks
