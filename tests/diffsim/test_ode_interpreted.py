"""A new fixed-step ODE problem's first rollouts and gradients run as Python while Numba compiles
its loops (diffsim.interpreted): they must give the compiled code's bits, for every scheme and
gradient method. Adaptive problems compile first: their twin's adjoint differed from the compiled
one in the last bits (dopri5, 2e-15 relative), so they are not interpreted."""

from __future__ import annotations

import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import diffsim.numpy as dnp
    import diffsim.interpreted as interpreted
    if sys.argv[1] == "interpreted":   # no background compiler: every call stays in the Python twin
        interpreted._Compiler.request = lambda *args, **kwargs: None
    from diffsim.ode import ODEProblem
    from trajectories.dynamics import cart_pole

    def running(x, u, p, t):
        return 0.1 * dnp.sum(x * x) + u[0] ** 2 + 0.05 * dnp.sin(t) * x[0]

    def terminal(x, p):
        return 5.0 * dnp.sum(x * x) + p[1] * x[1]

    p = np.array([1.0, 0.1, 0.5, 9.81])
    rng = np.random.default_rng(3)
    x0, U = np.array([0.1, 0.4, -0.2, 0.3]), 0.5 * rng.standard_normal((40, 1))
    out = {}
    for scheme in ("euler", "rk4"):
        prob = ODEProblem(cart_pole, 4, 1, 4, running_cost=running, terminal_cost=terminal, scheme=scheme,
                          name=f"interpreted_{scheme}")
        r = prob.rollout(x0, U, p, T=1.2)
        out[scheme, "rollout"] = [r.x.tolist(), r.cost]
        for method in ("bptt", "checkpointed", "adjoint"):
            g = prob.gradient(x0, U, p, T=1.2, method=method)
            out[scheme, method] = [g.cost, g.dx0.tolist(), g.dU.tolist(), g.dp.tolist()]
    print(json.dumps({f"{k[0]} {k[1]}": v for k, v in out.items()}))
""")


@pytest.mark.slow
def test_interpreted_rollouts_and_gradients_give_the_compiled_bits(run_interpreted_and_compiled):
    interpreted, compiled = run_interpreted_and_compiled(CHILD)
    assert set(interpreted) == set(compiled) and len(compiled) == 8
    for key in compiled:
        assert interpreted[key] == compiled[key], key   # every bit of every state, cost and gradient


def test_adaptive_problems_compile_first_and_fixed_step_ones_are_interpreted(monkeypatch):
    import diffsim.numpy as dnp
    from diffsim.interpreted import InterpretedUntilCompiled
    from diffsim.ode import ODEProblem

    monkeypatch.setenv("DIFFSIM_JIT", "background")

    def decay(x, u, p, t):
        return -p[0] * x + u

    kinds = {s: isinstance(ODEProblem(decay, 1, 1, 1, running_cost=lambda x, u, p, t: dnp.sum(x * x), scheme=s,
                                      name="interpreted_kind").module, InterpretedUntilCompiled)
             for s in ("rk4", "dopri5")}
    assert kinds == {"rk4": True, "dopri5": False}
