"""DDP's first solves run as Python while Numba compiles its loops (diffsim.interpreted): the
interpreted solve must give the compiled solve's bits, on the written-out small-stage loops and on
the BLAS path of eight states and more, with and without control bounds."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import diffsim.interpreted as interpreted
    if sys.argv[1] == "interpreted":   # no background compiler: every call stays in the Python twin
        interpreted._Compiler.request = lambda *args, **kwargs: None
    from trajectories import SYSTEMS, solve
    from trajectories.problem import OptimalControlProblem

    def dense(n=8, m=3, N=12, bound=np.inf):
        rng = np.random.default_rng(5)
        A = np.eye(n) + 0.1 * rng.standard_normal((n, n)) - np.eye(n)
        B = rng.standard_normal((n, m))
        Q = np.eye(n) + 0.1 * np.diag(rng.random(n))
        q, x0 = rng.standard_normal(n), rng.standard_normal(n)
        return OptimalControlProblem(lambda x, u: x @ A.T + u @ B.T, x0=x0, T=float(N), N=N, n_u=m, scheme="euler",
                                     running_cost=lambda x, u: 0.5 * (x @ Q @ x) + 0.5 * (u @ u) + x @ q,
                                     terminal_cost=lambda x: 0.5 * (x @ Q @ x), u_lower=-bound, u_upper=bound,
                                     name="interpreted_dense_lqr")

    out = {}
    for name, ocp in (("cart_pole", SYSTEMS["cart_pole"](N=40)), ("dense", dense()), ("dense_box", dense(bound=0.3))):
        sol = solve(ocp, method="ddp")
        out[name] = {"status": bool(sol.status), "x": sol.x.tolist(), "u": sol.u.tolist(), "cost": sol.cost,
                     "iterations": sol.iterations}
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_an_interpreted_ddp_solve_gives_the_compiled_solves_bits(run_interpreted_and_compiled):
    interpreted, compiled = run_interpreted_and_compiled(CHILD)
    for name in ("cart_pole", "dense", "dense_box"):
        a, b = interpreted[name], compiled[name]
        assert a["status"] and b["status"], name
        assert a == b, name   # every bit of every state and control, the cost and the iterations
    # the bounded problem is active somewhere (else it would not test the box path)
    assert np.max(np.abs(compiled["dense_box"]["u"])) == pytest.approx(0.3, abs=1e-9)
