"""The fused message-passing primitives: equal to plain numpy, and their derivatives (to second
order, both modes) equal finite differences."""

import numpy as np
import pytest

import diffsim as ds
import diffsim.numpy as dnp
from diffsim.graph import (
    gather_contract_f,
    gather_contract_x,
    gather_dot,
    gather_mul_scatter,
    outer_scatter,
    pair_differences,
    pair_scatter,
)

rng = np.random.default_rng(0)
N, M, E, F = 4, 3, 9, 5
SRC, DST = rng.integers(0, M, E), rng.integers(0, N, E)
Y, G = rng.standard_normal((M, 3, F)), rng.standard_normal((N, 3, F))
W, C, U = rng.standard_normal((E, F)), rng.standard_normal((E, F)), rng.standard_normal((E, 3))


def scatter(values, ids, n):
    out = np.zeros((n,) + values.shape[1:])
    np.add.at(out, ids, values)
    return out


CASES = {
    "gather_mul_scatter": (lambda y, w: gather_mul_scatter(y, w, src=SRC, dst=DST, n=N), (Y, W),
                           lambda y, w: scatter(y[SRC] * w[:, None, :], DST, N)),
    "gather_dot": (lambda g, y: gather_dot(g, y, ia=DST, ib=SRC), (G, Y),
                   lambda g, y: np.sum(g[DST] * y[SRC], axis=1)),
    "outer_scatter": (lambda u, c: outer_scatter(u, c, dst=DST, n=N), (U, C),
                      lambda u, c: scatter(u[:, :, None] * c[:, None, :], DST, N)),
    "gather_contract_f": (lambda g, c: gather_contract_f(g, c, ia=DST), (G, C),
                          lambda g, c: np.einsum("exf,ef->ex", g[DST], c)),
    "gather_contract_x": (lambda g, u: gather_contract_x(g, u, ia=DST), (G, U),
                          lambda g, u: np.einsum("exf,ex->ef", g[DST], u)),
}


@pytest.mark.parametrize("name", CASES)
def test_equals_plain_numpy(name):
    fun, args, reference = CASES[name]
    np.testing.assert_allclose(fun(*args), reference(*args), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", CASES)
def test_derivatives_to_second_order(name):
    fun, args, _ = CASES[name]
    ds.check_grads(lambda a, b: dnp.sum(dnp.sin(fun(a, b))), args, order=2)


def test_composes_with_the_engine_like_the_plain_ops():
    # Σ_j (v_j ∘ b_ij + û_ij ⊗ c_ij) both ways, differentiated twice through a scalar loss
    def fused(y, w, u, c):
        return dnp.sum(dnp.tanh(gather_mul_scatter(y, w, src=SRC, dst=DST, n=N) + outer_scatter(u, c, dst=DST, n=N)))

    def plain(y, w, u, c):
        msg = y[SRC] * w[:, None, :] + u[:, :, None] * c[:, None, :]
        return dnp.sum(dnp.tanh(dnp.segment_sum(msg, DST, N)))

    args = (Y, W, U, C)
    for a, b in zip(ds.grad(fused, argnums=(0, 1, 2, 3))(*args), ds.grad(plain, argnums=(0, 1, 2, 3))(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    hf = ds.hvp(fused, args, args)[0]
    hp = ds.hvp(plain, args, args)[0]
    np.testing.assert_allclose(hf, hp, rtol=1e-11, atol=1e-12)


def test_pair_differences_are_the_gathers_and_pass_check_grads():
    rng = np.random.default_rng(10)
    R = rng.standard_normal((6, 3))
    k = dict(centers=np.array([0, 0, 1, 3, 4, 2, 5]), neighbors=np.array([1, 2, 0, 4, 3, 4, 5]))
    np.testing.assert_array_equal(pair_differences(R, **k), R[k["neighbors"]] - R[k["centers"]])
    ds.check_grads(lambda R: pair_differences(R, **k), (R,), order=2, modes=("rev", "fwd"))
    ds.check_grads(lambda g: pair_scatter(g, n=6, **k), (rng.standard_normal((7, 3)),), order=2,
                   modes=("rev", "fwd"))


def test_bad_indices_and_shapes_raise_naming_the_primitive():
    with pytest.raises(IndexError, match="gather_mul_scatter: src holds indices outside 0..2"):
        gather_mul_scatter(Y, W, src=np.append(SRC[:-1], 5), dst=DST, n=N)
    with pytest.raises(ValueError, match=r"gather_mul_scatter: w has shape \(9, 1\), expected \(9, 5\)"):
        gather_mul_scatter(Y, W[:, :1], src=SRC, dst=DST, n=N)
    with pytest.raises(ValueError, match="outer_scatter: dst must be 1-D integer indices"):
        outer_scatter(U, C, dst=DST.astype(float), n=N)
    with pytest.raises(IndexError, match="pair_differences: neighbors"):
        pair_differences(Y[:, 0, :], centers=np.array([0]), neighbors=np.array([7]))
    with pytest.raises(TypeError):  # indices passed by position would be taken for differentiable inputs
        gather_dot(G, Y, DST, SRC)
