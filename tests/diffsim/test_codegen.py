"""ds.compile: generated kernels equal the eager engine (1e-12) and finite differences."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsim as ds
import diffsim.numpy as dnp
from diffsim.symbolic import TraceError
from trajectories.dynamics import MODELS, quadratic_cost

CASES = {name: (f, (n, m, len(p)), p) for name, (f, n, m, p) in MODELS.items()}
CASES["quadratic_cost"] = (quadratic_cost, (3, 1, 5), np.array([1.0, 2.0, 3.0, 0.3, 0.5]))
_KERNELS = {}


def kernel_for(name):
    if name not in _KERNELS:
        f, shapes, _ = CASES[name]
        _KERNELS[name] = ds.compile(f, *shapes)
    return _KERNELS[name]


def random_args(name, seed):
    f, (n, m, k), p = CASES[name]
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n), rng.standard_normal(m), p * rng.uniform(0.8, 1.2, k)]


def close(a, b, rtol=1e-12):
    a, b = np.asarray(a, float), np.asarray(b, float)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.max(np.abs(b), initial=0.0)))


@pytest.mark.parametrize("name", list(CASES))
def test_kernels_equal_eager_engine(name):
    f = CASES[name][0]
    k = kernel_for(name)
    for seed in range(3):
        args = random_args(name, seed)
        value, back = ds.vjp(f, *args)
        close(k.forward(*args), value)
        ct = np.random.default_rng(seed + 10).standard_normal(np.shape(value))
        ct_arg = float(ct) if np.shape(value) == () else ct
        for got, want in zip(k.vjp(*args, ct_arg), back(ct)):
            close(got, want)
        tangents = [np.random.default_rng(seed + 20 + i).standard_normal(a.shape) for i, a in enumerate(args)]
        close(k.jvp(*args, *tangents), ds.jvp(f, args, tangents)[1])
        for i, J in enumerate(k.jacobian(*args)):
            close(J, ds.jacobian(f, argnums=i)(*args))
        # the allocation-free variants write the same numbers into caller buffers
        bufs = [np.empty(a.shape) for a in args]
        k.vjp_into(*args, ct_arg, *bufs)
        for got, want in zip(bufs, back(ct)):
            close(got, want)
        if np.shape(value) == ():
            close(k.forward_into(*args), value)
            close(k.jvp_into(*args, *tangents), ds.jvp(f, args, tangents)[1])
        else:
            out = np.empty(np.shape(value))
            k.forward_into(*args, out)
            close(out, value)
            k.jvp_into(*args, *tangents, out)
            close(out, ds.jvp(f, args, tangents)[1])
        hv_eager = ds.jvp(lambda *a: ds.vjp(f, *a)[1](ct), args, tangents)[1]
        for got, want in zip(k.hvp(*args, ct_arg, *tangents), hv_eager):
            close(got, want)


@pytest.mark.parametrize("name", list(CASES))
def test_jacobian_matches_finite_differences(name):
    k = kernel_for(name)
    args = random_args(name, 5)
    for i, J in enumerate(k.jacobian(*args)):
        fd = np.zeros_like(J)
        for j in range(args[i].size):
            e = np.zeros_like(args[i])
            e[j] = 1e-6
            plus = [a + e if q == i else a for q, a in enumerate(args)]
            minus = [a - e if q == i else a for q, a in enumerate(args)]
            fd[..., j] = (np.asarray(k.forward(*plus)) - np.asarray(k.forward(*minus))) / 2e-6
        np.testing.assert_allclose(J, fd, rtol=1e-5, atol=1e-6)


def test_nan_input_propagates():
    k = kernel_for("cart_pole")
    x = np.array([0.0, np.nan, 0.0, 0.0])
    out = k.forward(x, np.array([1.0]), CASES["cart_pole"][2])
    assert np.isnan(out[2]) and np.isnan(out[3])
    assert out[0] == 0.0  # a component that does not depend on the NaN stays exact


def test_division_by_zero_gives_inf_not_exception():
    k = ds.compile(lambda x: dnp.array([1.0 / x[0], dnp.log(x[0])]), 1)
    out = k.forward(np.array([0.0]))
    assert np.isinf(out[0]) and out[1] == -np.inf


def test_where_branches_and_scalar_arguments():
    def f(x, t):
        return dnp.where(x > t, x * x, -x) + dnp.maximum(x, 0.5) * t

    k = ds.compile(f, 3, ())
    x = np.array([-1.0, 0.2, 2.0])
    close(k.forward(x, 0.3), f(x, 0.3))
    close(k.jacobian(x, 0.3)[0], ds.jacobian(f)(x, 0.3))
    close(k.jacobian(x, 0.3)[1], ds.jacobian(f, argnums=1)(x, 0.3))


def test_scalar_output_gradient_and_reductions():
    def energy(x):
        return 0.5 * dnp.sum(x * x) + dnp.logsumexp(x) + dnp.max(x) * dnp.prod(dnp.cos(x))

    k = ds.compile(energy, 4)
    x = np.array([0.1, -0.3, 0.7, 0.2])
    assert abs(k.forward(x) - energy(x)) < 1e-13
    (g,) = k.vjp(x, 1.0)
    close(g, ds.grad(energy)(x))
    close(k.jacobian(x)[0], ds.grad(energy)(x))


def test_matrix_vector_products_and_slices():
    A = np.arange(9.0).reshape(3, 3) / 10

    def f(x, u):
        return dnp.concatenate([A @ x[:3], x[3:] * u, dnp.stack([dnp.dot(x[:3], x[1:4])])])

    k = ds.compile(f, 4, 1)
    x, u = np.array([0.5, -1.0, 2.0, 0.3]), np.array([2.0])
    close(k.forward(x, u), f(x, u))
    close(k.jacobian(x, u)[0], ds.jacobian(f)(x, u))


def test_unchecked_bodies_compute_the_same_without_shape_checks():
    k = kernel_for("cart_pole")
    x, u, p = random_args("cart_pole", 7)
    close(k.unchecked.forward(x, u, p), k.forward(x, u, p))
    for a, b in zip(k.unchecked.vjp(x, u, p, np.ones(4)), k.vjp(x, u, p, np.ones(4))):
        close(a, b)
    assert "def forward_unchecked(x, u, p):" in k.source


def test_source_is_readable_python():
    k = kernel_for("pendulum")
    assert "def forward(x, u, p):" in k.source and "math.sin" in k.source
    compile(k.source, "<kernel>", "exec")


def test_python_if_on_traced_value_points_to_where():
    def f(x):
        if x[0] > 0:
            return x * 2.0
        return x

    with pytest.raises(TraceError, match="dnp.where"):
        ds.compile(f, 2)


def test_float_on_traced_value_raises():
    with pytest.raises(ds.NonDifferentiableError, match="float"):
        ds.compile(lambda x: dnp.array([float(x[0])]), 2)


def test_unsupported_operation_is_named():
    with pytest.raises(ds.NonDifferentiableError, match="numpy.argsort needs concrete values"):
        ds.compile(lambda x: np.sort(x), 3)
    with pytest.raises(TraceError, match="solve"):
        ds.compile(lambda x: dnp.linalg.solve(np.eye(2) + dnp.outer(x, x), x), 2)


def test_bad_shapes():
    with pytest.raises(TraceError, match="1-D"):
        ds.compile(lambda x: dnp.outer(x, x), 2)
    with pytest.raises(ValueError, match="shape of argument 0"):
        ds.compile(lambda x: x, "four")
    k = kernel_for("pendulum")
    with pytest.raises(ValueError, match="argument x must have shape"):
        k.forward(np.zeros(3), np.zeros(1), CASES["pendulum"][2])


def test_cache_second_process_compiles_nothing(tmp_path):
    script = textwrap.dedent("""
        import json, time, numpy as np
        import diffsim as ds
        from trajectories.dynamics import cart_pole
        t0 = time.perf_counter()
        k = ds.compile(cart_pole, 4, 1, 4)
        k.compile_all()
        stats = {f: getattr(k, f).stats for f in ("forward", "vjp", "jvp", "jacobian", "hvp")}
        print(json.dumps({"hits": sum(sum(s.cache_hits.values()) for s in stats.values()),
                          "misses": sum(sum(s.cache_misses.values()) for s in stats.values()),
                          "seconds": time.perf_counter() - t0, "path": str(k.path)}))
    """)
    env = dict(os.environ, DIFFSIM_CACHE_DIR=str(tmp_path))
    import json

    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                      check=True).stdout) for _ in range(2)]
    assert runs[0]["misses"] == 5 and runs[0]["hits"] == 0
    assert runs[1]["hits"] == 5 and runs[1]["misses"] == 0
    assert runs[0]["path"] == runs[1]["path"] and runs[0]["path"].startswith(str(tmp_path))


def test_changed_function_gets_new_module():
    k1 = ds.compile(lambda x: x * 2.0, 2)
    k2 = ds.compile(lambda x: x * 3.0, 2)
    assert k1.path != k2.path


# ---------------------------------------------------------------- random expressions

UNARY = ["sin", "cos", "tanh", "exp", "arctan", "softplus"]
BINARY = ["add", "subtract", "multiply", "hypot_like", "where_max"]


def _apply(op, a, b=None):
    if op == "hypot_like":
        return dnp.sqrt(a * a + b * b + 1.0)
    if op == "where_max":
        return dnp.where(a > b, a, b * 0.5)
    if op in BINARY:
        return getattr(dnp, op)(a, b)
    return getattr(dnp, op)(a)


exprs = st.lists(st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 9), st.integers(0, 9)),
                 min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(program=exprs, seed=st.integers(0, 1000))
def test_random_expressions_match_eager(program, seed):
    def f(x):
        vals = [x[0], x[1], x[2]]
        for op, i, j in program:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            vals.append(dnp.tanh(_apply(op, a, b)))
        return dnp.stack(vals[-2:])

    k = ds.compile(f, 3)
    x = np.random.default_rng(seed).standard_normal(3)
    close(k.forward(x), f(x))
    close(k.jacobian(x)[0], ds.jacobian(f)(x))


# ---------------------------------------------------------------- the scalar subset of the numpy functions

def _scalar_functions(m, x):
    """Every scalar function with a code template, written against a numpy-like module m."""
    a, b, c = x[0], x[1], x[2]
    return m.stack([m.mod(a * 3.0, 1.3), a % 0.7, m.remainder(b, -0.9), m.fmod(a * 3.0, c), m.hypot(a, b),
                    m.exp2(b), m.log2(c), m.log10(c), m.fmax(a, b), m.fmin(a, b), m.logaddexp(a, b),
                    m.logaddexp2(b, c), m.reciprocal(c), m.deg2rad(b), m.rad2deg(a), m.abs(b), m.arctan2(a, c),
                    m.sqrt(c), m.expm1(a), m.log1p(c), m.arcsinh(b), m.maximum(a, b) * m.minimum(b, c),
                    m.where(a > b, a * b, a - b)])


def test_scalar_functions_compile_and_match_numpy_and_finite_differences():
    k = ds.compile(lambda x: _scalar_functions(dnp, x), 3)
    rng = np.random.default_rng(3)
    for x in (np.array([0.37, -1.21, 1.7]), np.array([-0.83, 0.44, 0.6])):
        np.testing.assert_allclose(k.forward(x), _scalar_functions(np, x), rtol=1e-14, atol=1e-15)
        h = 1e-6
        fd = np.stack([(k.forward(x + h * e) - k.forward(x - h * e)) / (2 * h) for e in np.eye(3)], axis=-1)
        (J,) = k.jacobian(x)
        np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-7)
        v = rng.standard_normal(3)
        np.testing.assert_allclose(k.jvp(x, v), (k.forward(x + h * v) - k.forward(x - h * v)) / (2 * h),
                                   rtol=1e-6, atol=1e-7)
        ct = rng.standard_normal(J.shape[0])
        (hv,) = k.hvp(x, ct, v)
        fd_hv = (k.vjp(x + h * v, ct)[0] - k.vjp(x - h * v, ct)[0]) / (2 * h)
        np.testing.assert_allclose(hv, fd_hv, rtol=1e-5, atol=1e-6)


def test_templates_come_from_the_rule_table():
    from diffsim import codegen, symbolic
    from diffsim.primitives import REGISTRY

    assert codegen._TEMPLATES == {n: p.template for n, p in REGISTRY.items() if p.template}
    assert set(symbolic.ARITY) == set(codegen._TEMPLATES)
    for name in ("remainder", "hypot", "exp2", "log2", "log10", "fmax", "fmin", "logaddexp", "negative",
                 "absolute"):
        assert name in codegen._TEMPLATES


def test_a_module_of_several_kernels_keeps_each_functions_own_derivatives():
    # two functions of the same shapes in one module: each kernel must be its own (closed forms)
    from diffsim.codegen import compile_module

    specs = {"sq_": (lambda x: dnp.sum(x * x), (3,)), "sin_": (lambda x: dnp.sum(dnp.sin(x)), (3,))}
    _, k = compile_module(specs, title="two kernels")
    x, t = np.array([0.3, -1.2, 2.0]), np.array([1.0, 0.5, -2.0])
    close(k["sq_"].forward(x), np.sum(x * x))
    close(k["sin_"].forward(x), np.sum(np.sin(x)))
    close(k["sq_"].vjp(x, 1.0)[0], 2 * x)
    close(k["sin_"].vjp(x, 1.0)[0], np.cos(x))
    close(k["sq_"].jvp(x, t), 2 * x @ t)
    close(k["sin_"].jvp(x, t), np.cos(x) @ t)
    close(k["sin_"].hvp(x, 1.0, t)[0], -np.sin(x) * t)
    assert set(k["sq_"].op_counts) >= {"forward", "vjp", "jvp"}


def test_negative_and_infinite_constants_are_emitted_as_numbers():
    # (-0.5) ** x must not become -(0.5 ** x); -inf and inf constants must be floats in the source
    k = ds.compile(lambda x: (-0.5) ** x[0] + dnp.maximum(x[1], -np.inf) + dnp.minimum(x[2], np.inf), 3)
    for x in ([2.0, 1.5, -3.0], [3.0, -4.0, 7.0]):
        close(k.forward(np.array(x)), (-0.5) ** x[0] + x[1] + x[2])


def test_an_input_the_output_ignores_gets_zero_derivatives_of_the_right_shape():
    k = ds.compile(lambda x, y: 2.0 * x + dnp.sin(x[0]), 3, 2)
    x, y = np.array([0.5, -1.0, 2.0]), np.array([3.0, 4.0])
    Jx, Jy = k.jacobian(x, y)
    close(Jx, 2.0 * np.eye(3) + np.outer(np.ones(3), [np.cos(0.5), 0.0, 0.0]))
    assert Jy.shape == (3, 2) and not Jy.any()
    gx, gy = k.vjp(x, y, np.ones(3))
    close(gx, [2.0 + 3 * np.cos(0.5), 2.0, 2.0])
    assert gy.shape == (2,) and not gy.any()
    close(k.jvp(x, y, np.array([1.0, 0.0, 0.0]), np.array([5.0, 6.0])), 2.0 * np.array([1.0, 0, 0]) + np.cos(0.5))


def test_a_spec_with_kinds_emits_only_those_kernels():
    # a function whose value is a block of derivatives (a gradient traced inside) needs no
    # derivatives of its own: only the kinds asked for are emitted, and they compute the same values
    from diffsim.codegen import compile_module
    from diffsim.transforms import vjp

    def gradient(x):
        return vjp(lambda x: dnp.sum(dnp.sin(x) * x[0]), x)[1](1.0)[0]

    module, k = compile_module({"g_": (gradient, (3,), ("forward", "forward_into"))}, title="gradient only")
    x = np.array([0.4, -1.1, 2.5])
    want = np.sin(x) * 0.0 + np.cos(x) * x[0]
    want[0] += np.sum(np.sin(x))
    close(k["g_"].forward(x), want)
    out = np.empty(3)
    k["g_"].forward_into(x, out)
    close(out, want)
    assert k["g_"].jacobian is None and k["g_"].hvp is None and k["g_"].unchecked.vjp is None
    assert not hasattr(module, "g_jacobian") and "def g_vjp" not in k["g_"].source
    with pytest.raises(ValueError, match="unknown kernel kinds"):
        compile_module({"g_": (gradient, (3,), ("forward", "hessian"))}, title="bad kinds")


def test_a_kernel_pickles_as_its_source_and_works_in_another_process(tmp_path):
    import pickle

    k = ds.compile(lambda x, u: dnp.array([x[1], -9.81 * dnp.sin(x[0]) + u[0]]), 2, 1)
    blob = tmp_path / "kernel.pkl"
    blob.write_bytes(pickle.dumps(k))
    script = ("import pickle, sys, numpy as np; k = pickle.load(open(sys.argv[1], 'rb')); "
              "print(k.fun, *k.jacobian(np.array([0.3, 1.0]), np.array([0.5]))[0].ravel())")
    out = subprocess.run([sys.executable, "-c", script, str(blob)], capture_output=True, text=True, check=True,
                         env=dict(os.environ, DIFFSIM_CACHE_DIR=str(tmp_path / "fresh"))).stdout.split()
    assert out[0] == "None"  # the traced function does not travel
    # the closed form: d(x1, -9.81 sin x0 + u)/dx at x0 = 0.3
    np.testing.assert_allclose([float(v) for v in out[1:]], [0.0, 1.0, -9.81 * np.cos(0.3), 0.0], rtol=1e-14)
