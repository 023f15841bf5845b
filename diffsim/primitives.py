"""The rule table: every primitive's numpy implementation and its derivative rules, in one place.

Rules are written with primitives, so they are differentiable themselves: grad of grad, Hessians
and force-matching all reuse this table. A rule receives the output cotangent ``g`` (reverse
mode) or an argument's tangent ``t`` (forward mode), the primal output ``ans``, the primal
arguments and the static parameters. Broadcasting is undone once, by the interpreter
(:func:`unbroadcast`, :func:`broadcast_tangent`), never inside a rule.

Helpers keep each entry to a line or two (as JAX's ``deflinear`` and autograd's ``defvjp``):

- ``defderiv(p, d0, d1, ...)``: elementwise ops; ``d_i(ans, *args)`` is the partial derivative
  w.r.t. argument i, so VJP is ``g * d_i`` and JVP is ``t * d_i``;
- ``deflinear(p, vjp)``: ops linear in their first argument; JVP is ``p(t, *rest)``;
- ``defvjp`` / ``defjvp``: anything else, rule by rule.
"""

from __future__ import annotations

import numpy as np

from . import scatter
from .tracer import Box, NondiffPrimitive, Primitive, raw, shape

# ---------------------------------------------------------------- registration helpers


def defvjp(prim: Primitive, *rules, argnums=None) -> None:
    """Register reverse-mode rules ``rule(g, ans, *args, **params)``, one per argument.

    ``None`` leaves an argument without a rule (differentiating it then raises).

    >>> import numpy as np, diffsim as ds
    >>> cube = ds.primitive(lambda x: x ** 3)
    >>> ds.defvjp(cube, lambda g, ans, x: 3 * g * x ** 2)
    >>> float(ds.grad(cube)(2.0))
    12.0
    """
    for i, rule in zip(argnums if argnums is not None else range(len(rules)), rules):
        if rule is not None:
            prim.vjps[i] = rule


def defjvp(prim: Primitive, *rules, argnums=None) -> None:
    """Register forward-mode rules ``rule(t, ans, *args, **params)``, one per argument.

    >>> import numpy as np, diffsim as ds
    >>> cube = ds.primitive(lambda x: x ** 3)
    >>> ds.defjvp(cube, lambda t, ans, x: 3 * t * x ** 2)
    >>> float(ds.jvp(cube, (2.0,), (1.0,))[1])
    12.0
    """
    for i, rule in zip(argnums if argnums is not None else range(len(rules)), rules):
        if rule is not None:
            prim.jvps[i] = rule


def defderiv(prim: Primitive, *partials) -> None:
    """Elementwise primitive: register ``g * d`` (VJP) and ``t * d`` (JVP) per partial."""
    for i, d in enumerate(partials):
        if d is not None:
            prim.vjps[i] = lambda g, ans, *args, _d=d: g * _d(ans, *args)
            prim.jvps[i] = lambda t, ans, *args, _d=d: t * _d(ans, *args)


def deflinear(prim: Primitive, vjp) -> None:
    """Primitive linear in its first argument: JVP is the primitive applied to the tangent."""
    prim.vjps[0] = vjp
    prim.jvps[0] = lambda t, ans, x, *rest, **params: prim(t, *rest, **params)


def saves(prims, args: bool = True, ans: bool = True) -> None:
    """Declare what the reverse rules of ``prims`` read: their inputs (``args``) and/or their
    output (``ans``). The tape keeps only a shape for what is not read (less memory)."""
    for prim in prims:
        prim.keep_args, prim.keep_ans = args, ans


def _p(name, impl):
    return Primitive(name, impl)


# ---------------------------------------------------------------- broadcasting, done once


def sum_to(x, to_shape: tuple):
    """Sum ``x`` down to ``to_shape`` (the adjoint of numpy broadcasting)."""
    xs = shape(x)
    if xs == to_shape:
        return x
    lead = len(xs) - len(to_shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(to_shape) if n == 1 and xs[lead + i] != 1)
    if axes:
        x = sum_(x, axis=axes, keepdims=False)
    return reshape(x, shape=to_shape) if shape(x) != to_shape else x


def unbroadcast(g, arg):
    """Cotangent ``g`` of a broadcast result, reduced to the shape of argument ``arg``."""
    return sum_to(g, shape(arg))


def broadcast_tangent(t, ans):
    """Tangent ``t`` of an argument, broadcast to the shape of the output ``ans``."""
    s = shape(ans)
    return t if shape(t) == s else broadcast_to(t, shape=s)


# ---------------------------------------------------------------- elementwise unary

neg = _p("neg", np.negative)
deflinear(neg, lambda g, ans, x: neg(g))
exp = _p("exp", np.exp)
defderiv(exp, lambda ans, x: ans)
log = _p("log", np.log)
defderiv(log, lambda ans, x: 1.0 / x)
log2 = _p("log2", np.log2)
defderiv(log2, lambda ans, x: 1.0 / (x * np.log(2.0)))
log10 = _p("log10", np.log10)
defderiv(log10, lambda ans, x: 1.0 / (x * np.log(10.0)))
log1p = _p("log1p", np.log1p)
defderiv(log1p, lambda ans, x: 1.0 / (1.0 + x))
expm1 = _p("expm1", np.expm1)
defderiv(expm1, lambda ans, x: ans + 1.0)
sin = _p("sin", np.sin)
defderiv(sin, lambda ans, x: cos(x))
cos = _p("cos", np.cos)
defderiv(cos, lambda ans, x: neg(sin(x)))
tan = _p("tan", np.tan)
defderiv(tan, lambda ans, x: 1.0 + ans * ans)
arcsin = _p("arcsin", np.arcsin)
defderiv(arcsin, lambda ans, x: 1.0 / sqrt(1.0 - x * x))
arccos = _p("arccos", np.arccos)
defderiv(arccos, lambda ans, x: -1.0 / sqrt(1.0 - x * x))
arctan = _p("arctan", np.arctan)
defderiv(arctan, lambda ans, x: 1.0 / (1.0 + x * x))
sinh = _p("sinh", np.sinh)
defderiv(sinh, lambda ans, x: cosh(x))
cosh = _p("cosh", np.cosh)
defderiv(cosh, lambda ans, x: sinh(x))
tanh = _p("tanh", np.tanh)
defderiv(tanh, lambda ans, x: 1.0 - ans * ans)
arcsinh = _p("arcsinh", np.arcsinh)
defderiv(arcsinh, lambda ans, x: 1.0 / sqrt(x * x + 1.0))
arccosh = _p("arccosh", np.arccosh)
defderiv(arccosh, lambda ans, x: 1.0 / sqrt(x * x - 1.0))
arctanh = _p("arctanh", np.arctanh)
defderiv(arctanh, lambda ans, x: 1.0 / (1.0 - x * x))
sqrt = _p("sqrt", np.sqrt)
defderiv(sqrt, lambda ans, x: 0.5 / ans)
square = _p("square", np.square)
defderiv(square, lambda ans, x: 2.0 * x)
absolute = _p("abs", np.abs)
defderiv(absolute, lambda ans, x: sign(x))

# ---------------------------------------------------------------- elementwise binary

add = _p("add", np.add)
defvjp(add, lambda g, ans, x, y: g, lambda g, ans, x, y: g)
defjvp(add, lambda t, ans, x, y: t, lambda t, ans, x, y: t)
subtract = _p("subtract", np.subtract)
defvjp(subtract, lambda g, ans, x, y: g, lambda g, ans, x, y: neg(g))
defjvp(subtract, lambda t, ans, x, y: t, lambda t, ans, x, y: neg(t))
multiply = _p("multiply", np.multiply)
defderiv(multiply, lambda ans, x, y: y, lambda ans, x, y: x)
divide = _p("divide", np.true_divide)
defderiv(divide, lambda ans, x, y: 1.0 / y, lambda ans, x, y: neg(ans) / y)
power = _p("power", np.power)
def _power_dx(ans, x, y):
    """∂(x^y)/∂x = y x^(y-1), and exactly 0 for a constant y = 0 (x^0 ≡ 1): otherwise repeated
    differentiation of an integer power at x = 0 would reach 0 · 0^(-1) = NaN."""
    if type(y) is not Box and np.all(np.asarray(raw(y)) == 0):
        return np.zeros(np.shape(raw(x)))
    return y * power(x, y - 1.0)


defderiv(power,
         _power_dx,
         # log(x) is only needed where x > 0; elsewhere the true partial is 0 or undefined
         lambda ans, x, y: ans * log(where(raw(x) > 0, x, 1.0)))
maximum = _p("maximum", np.maximum)
defderiv(maximum, lambda ans, x, y: _tie(raw(x), raw(y)), lambda ans, x, y: _tie(raw(y), raw(x)))
minimum = _p("minimum", np.minimum)
defderiv(minimum, lambda ans, x, y: _tie(raw(y), raw(x)), lambda ans, x, y: _tie(raw(x), raw(y)))
arctan2 = _p("arctan2", np.arctan2)
defderiv(arctan2, lambda ans, y, x: x / (x * x + y * y), lambda ans, y, x: neg(y) / (x * x + y * y))


def _tie(a, b):
    """Subgradient weight of the first argument of maximum(a, b): 1, 0, or 1/2 at ties."""
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


where = _p("where", np.where)
defvjp(where, None, lambda g, ans, c, x, y: where(c, g, 0.0), lambda g, ans, c, x, y: where(c, 0.0, g))
defjvp(where, None, lambda t, ans, c, x, y: where(c, t, 0.0), lambda t, ans, c, x, y: where(c, 0.0, t))

# ---------------------------------------------------------------- non-differentiable


def _nd(name, impl):
    return NondiffPrimitive(name, impl)


sign = _nd("sign", np.sign)
stop_gradient = _nd("stop_gradient", lambda x: x)

# ---------------------------------------------------------------- reductions


def _keep(g, x_shape, axis, keepdims):
    """Reshape a reduction's cotangent so that it broadcasts against the input.
    ``axis`` is None or a tuple of non-negative ints (``diffsim.numpy`` normalises it)."""
    if keepdims:
        return g
    if axis is None:
        return reshape(g, shape=(1,) * len(x_shape))
    kept = list(shape(g))
    for a in sorted(axis):
        kept.insert(a, 1)
    return reshape(g, shape=tuple(kept))


def _sum_impl(x, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


sum_ = _p("sum", _sum_impl)
deflinear(sum_, lambda g, ans, x, axis=None, keepdims=False:
          broadcast_to(_keep(g, shape(x), axis, keepdims), shape=shape(x)))

amax = _p("max", lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims))
amin = _p("min", lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims))


def _extremum_weights(ans, x, axis, keepdims):
    """Where ``x`` attains the reduction's value, weighted 1/count (ties share evenly)."""
    hit = raw(x) == raw(_keep(raw(ans), shape(x), axis, keepdims))
    return hit / np.sum(hit, axis=axis, keepdims=True)


for _red in (amax, amin):
    defvjp(_red, lambda g, ans, x, axis=None, keepdims=False:
           _keep(g, shape(x), axis, keepdims) * _extremum_weights(ans, x, axis, keepdims))
    defjvp(_red, lambda t, ans, x, axis=None, keepdims=False:
           sum_(t * _extremum_weights(ans, x, axis, keepdims), axis=axis, keepdims=keepdims))


prod = _p("prod", lambda x, axis=None, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims))


def _prod_others(ans, x, axis, keepdims):
    """∂prod/∂x_i = prod of the other entries; exact when x has zeros (O(K²) only then)."""
    nonzero = raw(x) != 0  # concrete in eager mode; symbolic (unknown) under ds.compile
    if isinstance(nonzero, (np.ndarray, np.bool_, bool)) and np.all(nonzero):
        return _keep(ans, shape(x), axis, keepdims) / x
    nd = len(shape(x))
    axes = tuple(range(nd)) if axis is None else axis
    rest = tuple(a for a in range(nd) if a not in axes)
    xt = transpose(x, axes=rest + axes)
    lead = tuple(shape(xt)[: len(rest)])
    k = int(np.prod(shape(xt)[len(rest):]))
    xf = reshape(xt, shape=lead + (1, k))
    eye = np.eye(k, dtype=bool)
    others = prod(where(eye, 1.0, xf), axis=(len(lead) + 1,))  # (..., k): all but i
    out = reshape(others, shape=shape(xt))
    return transpose(out, axes=tuple(np.argsort(rest + axes)))


defvjp(prod, lambda g, ans, x, axis=None, keepdims=False:
       _keep(g, shape(x), axis, keepdims) * _prod_others(ans, x, axis, keepdims))
defjvp(prod, lambda t, ans, x, axis=None, keepdims=False:
       sum_(t * _prod_others(ans, x, axis, keepdims), axis=axis, keepdims=keepdims))

cumsum = _p("cumsum", lambda x, axis: np.cumsum(x, axis=axis))


def _flip(x, axis):
    return getitem(x, idx=(slice(None),) * axis + (slice(None, None, -1),))


deflinear(cumsum, lambda g, ans, x, axis: _flip(cumsum(_flip(g, axis), axis=axis), axis))

# ---------------------------------------------------------------- shape and indexing

reshape = _p("reshape", lambda x, shape: np.reshape(x, shape))
deflinear(reshape, lambda g, ans, x, shape: reshape(g, shape=np.shape(raw(x))))
transpose = _p("transpose", lambda x, axes: np.transpose(x, axes))
deflinear(transpose, lambda g, ans, x, axes: transpose(g, axes=tuple(np.argsort(axes))))
broadcast_to = _p("broadcast_to", lambda x, shape: np.broadcast_to(x, shape))
deflinear(broadcast_to, lambda g, ans, x, shape: sum_to(g, np.shape(raw(x))))


def _concat_vjp_all(g, ans, args, params, argnums):
    axis = params["axis"]
    offsets = np.cumsum([0] + [shape(a)[axis] for a in args])
    pre = (slice(None),) * axis
    return [getitem(g, idx=pre + (slice(offsets[i], offsets[i + 1]),)) for i in argnums]


concatenate = _p("concatenate", lambda *xs, axis: np.concatenate(xs, axis=axis))
concatenate.vjp_all = _concat_vjp_all
concatenate.jvp_all = lambda ts, ans, args, params: concatenate(
    *[np.zeros(shape(a)) if t is None else t for t, a in zip(ts, args)], **params)


def _is_basic_index(idx) -> bool:
    """True if ``x[idx]`` selects without repeats (ints, slices, None, Ellipsis only)."""
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


def _untake_impl(g, idx, shape):
    if scatter.applies(g, idx) and tuple(shape[1:]) == g.shape[1:]:
        return scatter.scatter_add_rows(g, idx, shape[0])
    out = np.zeros_like(g, shape=shape, dtype=np.result_type(g, np.float64))  # zeros_like dispatches
    if _is_basic_index(idx):
        out[idx] = g
    else:
        np.add.at(out, idx, g)
    return out


getitem = _p("getitem", lambda x, idx: x[idx])
untake = _p("untake", _untake_impl)  # the adjoint of indexing: scatter-add into zeros
deflinear(getitem, lambda g, ans, x, idx: untake(g, idx=idx, shape=shape(x)))
deflinear(untake, lambda g, ans, x, idx, shape: getitem(g, idx=idx))


def _segment_sum_impl(data, segment_ids, num_segments):
    if scatter.applies(data, segment_ids):
        return scatter.scatter_add_rows(data, segment_ids, num_segments)
    out = np.zeros_like(data, shape=(num_segments,) + np.shape(data)[1:], dtype=np.result_type(data, np.float64))
    np.add.at(out, segment_ids, data)
    return out


segment_sum = _p("segment_sum", _segment_sum_impl)
deflinear(segment_sum, lambda g, ans, data, segment_ids, num_segments: getitem(g, idx=segment_ids))

tril = _p("tril", lambda x, k=0: np.tril(x, k))
deflinear(tril, lambda g, ans, x, k=0: tril(g, k=k))
triu = _p("triu", lambda x, k=0: np.triu(x, k))
deflinear(triu, lambda g, ans, x, k=0: triu(g, k=k))

# ---------------------------------------------------------------- products


def _swap(x):
    return transpose(x, axes=tuple(range(len(shape(x)) - 2)) + (len(shape(x)) - 1, len(shape(x)) - 2))


def _matmul_vjp_a(g, ans, a, b):
    na, nb = len(shape(a)), len(shape(b))
    if nb == 1:  # (..., n, k) @ (k,) -> (..., n)
        return multiply(expand(g, -1), b) if na > 1 else multiply(g, b)
    if na == 1:  # (k,) @ (..., k, m) -> (..., m)
        return squeeze_axis(matmul(expand(g, -2), _swap(b)), -2)
    return matmul(g, _swap(b))


def _matmul_vjp_b(g, ans, a, b):
    na, nb = len(shape(a)), len(shape(b))
    if na == 1:  # (k,) @ (..., k, m)
        return multiply(expand(a, -1), expand(g, -2)) if nb > 1 else multiply(a, g)
    if nb == 1:  # (..., n, k) @ (k,)
        return squeeze_axis(matmul(_swap(a), expand(g, -1)), -1)
    if na > 2 and nb == 2:  # a stack times one matrix: one (k, Σn) @ (Σn, m) product, not a stack summed
        return matmul(_swap(reshape(a, shape=(-1, shape(a)[-1]))), reshape(g, shape=(-1, shape(g)[-1])))
    return matmul(_swap(a), g)


def expand(x, axis):
    s = list(shape(x))
    s.insert(axis if axis >= 0 else len(s) + 1 + axis, 1)
    return reshape(x, shape=tuple(s))


def squeeze_axis(x, axis):
    s = list(shape(x))
    del s[axis]
    return reshape(x, shape=tuple(s))


matmul = _p("matmul", np.matmul)
defvjp(matmul, _matmul_vjp_a, _matmul_vjp_b)
defjvp(matmul, lambda t, ans, a, b: matmul(t, b), lambda t, ans, a, b: matmul(a, t))


def _einsum_impl(*operands, subscripts):
    return np.einsum(subscripts, *operands, optimize=len(operands) > 2)


def _einsum_vjp_all(g, ans, args, params, argnums):
    ins, out = params["subscripts"].split("->")
    ins = ins.split(",")
    cts = []
    for i in argnums:
        target = ins[i]
        if len(set(target)) != len(target):
            raise NotImplementedError(
                f"einsum gradient with a repeated index in one operand ('{target}') is not "
                "supported; take the diagonal first with dnp.diagonal")
        others = [s for j, s in enumerate(ins) if j != i]
        avail = set(out).union(*others)
        kept = "".join(c for c in target if c in avail)
        r = einsum(*([g] + [a for j, a in enumerate(args) if j != i]),
                   subscripts=",".join([out] + others) + "->" + kept)
        if kept != target:  # indices summed only inside operand i: broadcast back
            full = "".join(c for c in target if c in kept) + "".join(c for c in target if c not in kept)
            r = reshape(r, shape=shape(r) + (1,) * (len(target) - len(kept)))
            r = transpose(r, axes=tuple(full.index(c) for c in target))
            r = broadcast_to(r, shape=shape(args[i]))
        cts.append(r)
    return cts


def _einsum_jvp_all(ts, ans, args, params):
    out = None
    for i, t in enumerate(ts):
        if t is not None:
            term = einsum(*args[:i], t, *args[i + 1:], **params)
            out = term if out is None else out + term
    return out


einsum = _p("einsum", _einsum_impl)
einsum.vjp_all = _einsum_vjp_all
einsum.jvp_all = _einsum_jvp_all

# ---------------------------------------------------------------- linear algebra (batched over leading axes)


def _col(b, a=None):
    """numpy.linalg.solve treats a 1-D b as one right-hand side vector."""
    return len(shape(b)) == 1


def _last2(a):
    n = len(shape(a))
    return (n - 2, n - 1)


solve = _p("solve", np.linalg.solve)


def _solve_vjp_b(g, ans, a, b):
    return solve(_swap(a), g)


def _solve_vjp_a(g, ans, a, b):
    gb = _solve_vjp_b(g, ans, a, b)
    if _col(b, a):
        return neg(multiply(expand(gb, -1), expand(ans, -2)))
    return neg(matmul(gb, _swap(ans)))


defvjp(solve, _solve_vjp_a, _solve_vjp_b)
defjvp(solve,
       lambda t, ans, a, b: neg(solve(a, squeeze_axis(matmul(t, expand(ans, -1)), -1)
                                      if _col(b, a) else matmul(t, ans))),
       lambda t, ans, a, b: solve(a, t))

inv = _p("inv", np.linalg.inv)
defvjp(inv, lambda g, ans, a: neg(matmul(_swap(ans), matmul(g, _swap(ans)))))
defjvp(inv, lambda t, ans, a: neg(matmul(ans, matmul(t, ans))))

det = _p("det", np.linalg.det)
defvjp(det, lambda g, ans, a: expand(expand(g * ans, -1), -1) * _swap(inv(a)))
defjvp(det, lambda t, ans, a: ans * sum_(_swap(inv(a)) * t, axis=_last2(a)))

logabsdet = _p("logabsdet", lambda a: np.linalg.slogdet(a)[1])
defvjp(logabsdet, lambda g, ans, a: expand(expand(g, -1), -1) * _swap(inv(a)))
defjvp(logabsdet, lambda t, ans, a: sum_(_swap(inv(a)) * t, axis=_last2(a)))


def _phi(x):
    """Lower triangle with the diagonal halved (Murray 2016, eq. 10)."""
    n = shape(x)[-1]
    return tril(x) - 0.5 * (x * np.eye(n))


def _cholesky_vjp(g, ans, a):
    # Murray (2016), "Differentiation of the Cholesky decomposition", eq. 10:
    # Ā = ½ Φ-symmetrised  L⁻ᵀ Φ(Lᵀ Ḡ) L⁻¹
    p = _phi(matmul(_swap(ans), g))
    s = solve(_swap(ans), _swap(solve(_swap(ans), _swap(p))))
    return 0.5 * (s + _swap(s))


def _cholesky_jvp(t, ans, a):
    # dL = L Φ(L⁻¹ dA L⁻ᵀ)  (Murray 2016, eq. 9), with the symmetric part of dA
    t = 0.5 * (t + _swap(t))
    x = solve(ans, _swap(solve(ans, _swap(t))))
    return matmul(ans, _phi(x))


cholesky = _p("cholesky", np.linalg.cholesky)
defvjp(cholesky, _cholesky_vjp)
defjvp(cholesky, _cholesky_jvp)

# ---------------------------------------------------------------- control: checkpointing


def _call_impl(*leaves, fun):
    return fun(*leaves)


def _checkpoint_vjp_all(g, ans, args, params, argnums):
    from .transforms import vjp  # the backward pass re-runs the segment under a fresh tape

    cts = vjp(params["fun"], *args)[1](g)
    return [cts[i] for i in argnums]


def _checkpoint_jvp_all(ts, ans, args, params):
    from .transforms import jvp

    tangents = tuple(np.zeros(shape(a)) if t is None else t for t, a in zip(ts, args))
    return jvp(params["fun"], args, tangents)[1]


remat = _p("checkpoint", _call_impl)
remat.vjp_all = _checkpoint_vjp_all
remat.jvp_all = _checkpoint_jvp_all

# ---------------------------------------------------------------- residuals the tape keeps

saves([add, subtract, neg, reshape, transpose, broadcast_to, sum_, getitem, untake, segment_sum, cumsum,
       tril, triu, concatenate], args=False, ans=False)
saves([exp, expm1, tanh, sqrt, tan], args=False)
saves([multiply, matmul, einsum, where, maximum, minimum, sin, cos, log, log2, log10, log1p, arcsin, arccos,
       arctan, sinh, cosh, arcsinh, arccosh, arctanh, square, absolute, arctan2], ans=False)
