"""Property tests: random compositions of primitives pass check_grads, and the modes agree."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsim as ds
import diffsim.numpy as dnp

# smooth everywhere on the reals (arguments are kept bounded by tanh where needed)
UNARY = [dnp.sin, dnp.cos, dnp.tanh, dnp.exp, dnp.arctan, dnp.softplus, dnp.sinh,
         lambda x: x * x, lambda x: dnp.log1p(x * x), lambda x: dnp.sqrt(1.0 + x * x)]
BINARY = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b,
          lambda a, b: a / (1.5 + dnp.tanh(b)), lambda a, b: dnp.arctan2(a, 2.0 + dnp.cos(b))]
REDUCE = [lambda x: dnp.sum(x, axis=0), lambda x: dnp.mean(x, axis=0),
          lambda x: dnp.logsumexp(x, axis=0), lambda x: dnp.cumsum(x, axis=0)[-1]]

programs = st.lists(st.tuples(st.integers(0, len(UNARY) - 1), st.integers(0, len(BINARY) - 1),
                              st.integers(0, 3)), min_size=1, max_size=5)


def build(program):
    def f(x, y):
        for u, b, k in program:
            x = dnp.tanh(BINARY[b](UNARY[u](x), y[k % y.shape[0]]))
        return x
    return f


@settings(max_examples=40, deadline=None)
@given(program=programs, seed=st.integers(0, 2**16), reduce=st.integers(0, len(REDUCE) - 1))
def test_random_programs_pass_check_grads(program, seed, reduce):
    rng = np.random.default_rng(seed)
    f = build(program)
    g = lambda x, y: REDUCE[reduce](f(x, y) @ np.ones((3, 2)))
    ds.check_grads(g, (rng.standard_normal((4, 3)), rng.standard_normal(3)), order=2, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(program=programs, seed=st.integers(0, 2**16))
def test_reverse_and_forward_jacobians_agree(program, seed):
    rng = np.random.default_rng(seed)
    f = build(program)
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    J = ds.jacrev(f)(x, y)
    np.testing.assert_allclose(J, ds.jacfwd(f)(x, y), rtol=1e-12, atol=1e-14)
    # both agree with central differences too (agreement alone would pass a bug shared by the modes)
    h = 1e-6
    fd = np.stack([(f(x + h * e, y) - f(x - h * e, y)) / (2 * h) for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(J, fd, rtol=1e-5, atol=1e-7)
