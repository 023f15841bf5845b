"""The rule table: every primitive declared once, with everything the engine needs to know of it.

A declaration gives a primitive's numpy implementation, its VJP and JVP rules, what its
backward pass reads (``saves``) and, for scalar elementwise operations, the template of the
Python/Numba expression that :mod:`diffsim.codegen` emits for it. The symbolic tracer's table of
scalar operations and the code generator's templates are derived from :data:`REGISTRY`; a new
elementwise function is one declaration here (and one test row). Primitives carry numpy's names.

Rules are written with primitives, so they are differentiable themselves: grad of grad, Hessians
and force-matching all reuse this table. A rule receives the output cotangent ``g`` (reverse
mode) or an argument's tangent ``t`` (forward mode), the primal output ``ans``, the primal
arguments and the static parameters. Broadcasting is undone once, by the interpreter
(:func:`unbroadcast`, :func:`broadcast_tangent`), never inside a rule.

Complex numbers follow JAX and autograd (checked against both): a cotangent ``ḡ`` of ``y``
stands for the real linear form ``δy ↦ Re(Σ ḡ·δy)`` (a transpose, not an adjoint). So the rule
of a holomorphic function is ``g · f'(z)``, unconjugated, and the gradient of a real-valued
function of ``z = x + iy`` is ``∂f/∂x − i ∂f/∂y`` (``grad(abs(z)**2)(3+4j) = 6−8j``, as JAX and
autograd return). Only the non-holomorphic primitives (``absolute``, ``real``, ``imag``,
``conjugate``) conjugate. A real input always receives a real cotangent (the interpreter takes
the real part where a real value meets a complex one).

Declaration helpers (one line or two per primitive, as JAX's ``deflinear`` and autograd's
``defvjp``):

- ``elementwise(name, d0, d1, ...)``: ``d_i(ans, *args)`` is the partial derivative w.r.t.
  argument i, so VJP is ``g * d_i`` and JVP is ``t * d_i``;
- ``linear(name, impl, vjp)``: ops linear in their first argument; JVP is ``p(t, *rest)``;
- ``declare(name, impl, vjps=..., jvps=...)``: anything else, rule by rule;
- ``nondiff(name)``: results that carry no derivative (comparisons, floor).
"""

from __future__ import annotations

import operator

import numpy as np

from . import scatter
from .errors import NonDifferentiableError
from .tracer import Box, NondiffPrimitive, Primitive, raw, shape

REGISTRY: dict[str, Primitive] = {}
"""Every primitive of the engine by name (numpy's name where numpy has the function)."""

HELPERS: dict[str, str] = {}
"""Source of the small Numba helper functions that scalar templates call, by name."""

_SAVES = {"both": (True, True), "args": (True, False), "ans": (False, True), "none": (False, False)}

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


def saves(prims, args: bool = True, ans: bool = True) -> None:
    """Declare what the reverse rules of ``prims`` read: their inputs (``args``) and/or their
    output (``ans``). The tape keeps only a shape for what is not read (less memory)."""
    for prim in prims:
        prim.keep_args, prim.keep_ans = args, ans


def _register(prim: Primitive, saves_: str, template: str | None, helper: tuple | None, arity: int | None,
              boolean: bool = False) -> Primitive:
    if prim.name in REGISTRY:
        raise ValueError(f"primitive {prim.name!r} is declared twice")
    impl = prim.impl
    if isinstance(impl, np.ufunc) and impl.__name__ != prim.name:
        raise ValueError(f"primitive {prim.name!r} wraps numpy.{impl.__name__}: give it numpy's name")
    prim.keep_args, prim.keep_ans = _SAVES[saves_]
    prim.template = template
    prim.arity = arity if arity is not None else getattr(impl, "nin", None)
    prim.boolean = boolean
    if helper is not None:
        HELPERS[helper[0]] = helper[1]
    REGISTRY[prim.name] = prim
    return prim


_NUMPY_OPERANDS = frozenset({np.ndarray, np.float64, np.complex128})  # float32 scalars: pow differs by an ulp
_NUMBERS = _NUMPY_OPERANDS | {float, int, complex}


def _through_operator(ufunc, op):
    """``ufunc`` computed through Python's operator when an operand is a numpy array or scalar:
    the same numpy arithmetic (numpy's scalar and array operators are its ufuncs), without the
    ufunc call's fixed cost, which dominates on scalars (the eager engine's hot path). Other
    operands (two Python numbers, lists, bools) go to the ufunc, which gives them numpy's semantics."""

    def impl(x, y):
        tx, ty = type(x), type(y)
        if (tx in _NUMPY_OPERANDS and ty in _NUMBERS) or (ty in _NUMPY_OPERANDS and tx in _NUMBERS):
            return op(x, y)
        return ufunc(x, y)

    impl.__name__, impl.__doc__, impl.nin = ufunc.__name__, ufunc.__doc__, ufunc.nin
    return impl


def declare(name: str, impl, vjps=(), jvps=(), vjp_all=None, jvp_all=None, saves: str = "both",
            template: str | None = None, helper: tuple | None = None, arity: int | None = None) -> Primitive:
    """Declare a primitive with its rules (``None`` in ``vjps``/``jvps``: no rule for that argument)."""
    prim = Primitive(name, impl)
    defvjp(prim, *vjps)
    defjvp(prim, *jvps)
    prim.vjp_all, prim.jvp_all = vjp_all, jvp_all
    return _register(prim, saves, template, helper, arity)


def elementwise(name: str, *partials, impl=None, saves: str = "args", template: str | None = None,
                helper: tuple | None = None) -> Primitive:
    """Elementwise primitive from its partial derivatives ``d_i(ans, *args)``: VJP ``g * d_i``,
    JVP ``t * d_i`` (unconjugated, which is right for holomorphic functions, see above)."""
    prim = Primitive(name, impl if impl is not None else getattr(np, name))
    for i, d in enumerate(partials):
        if d is None:
            continue
        if len(partials) == 1:  # unary: no argument packing (the backward pass's hot path)
            prim.vjps[i] = lambda g, ans, x, _d=d: g * _d(ans, x)
            prim.jvps[i] = lambda t, ans, x, _d=d: t * _d(ans, x)
        else:
            prim.vjps[i] = lambda g, ans, *args, _d=d: g * _d(ans, *args)
            prim.jvps[i] = lambda t, ans, *args, _d=d: t * _d(ans, *args)
    return _register(prim, saves, template, helper, None)


def linear(name: str, impl, vjp, saves: str = "none", template: str | None = None) -> Primitive:
    """Primitive linear in its first argument: JVP is the primitive applied to the tangent."""
    prim = Primitive(name, impl)
    prim.vjps[0] = vjp
    prim.jvps[0] = lambda t, ans, x, *rest, **params: prim(t, *rest, **params)
    return _register(prim, saves, template, None, None)


def nondiff(name: str, impl=None, template: str | None = None, boolean: bool = False,
            helper: tuple | None = None) -> NondiffPrimitive:
    """A function whose result is a constant (applied to plain values)."""
    prim = NondiffPrimitive(name, impl if impl is not None else getattr(np, name))
    return _register(prim, "none", template, helper, None, boolean)


def is_complex(x) -> bool:
    """True if ``x`` (possibly traced) holds complex numbers. Fast for the common real cases."""
    t = type(x)
    if t is float or t is np.float64 or t is int:
        return False
    if t is np.ndarray:
        return x.dtype.kind == "c"
    if t is Box:
        return is_complex(raw(x))
    d = getattr(x, "dtype", None)  # numpy scalars, and the symbolic arrays of ds.compile
    if d is not None:
        return d.kind == "c"
    return isinstance(x, complex) or (isinstance(x, (list, tuple)) and np.iscomplexobj(x))


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


# ---------------------------------------------------------------- non-differentiable scalar operations

sign = nondiff("sign", template="_sign({0})", helper=("_sign", (
    "def _sign(a):\n    if a > 0:\n        return 1.0\n    if a < 0:\n        return -1.0\n    return a * 0.0\n")))
floor = nondiff("floor", template="np.floor({0})")
ceil = nondiff("ceil", template="np.ceil({0})")
rint = nondiff("rint", template="np.rint({0})")
trunc = nondiff("trunc", template="np.trunc({0})")
floor_divide = nondiff("floor_divide", template="np.floor({0} / {1})")
for _name, _op in (("greater", ">"), ("greater_equal", ">="), ("less", "<"), ("less_equal", "<="),
                   ("equal", "=="), ("not_equal", "!="), ("logical_xor", "!=")):
    globals()[_name] = nondiff(_name, template="{0} %s {1}" % _op, boolean=True)
logical_and = nondiff("logical_and", template="{0} and {1}", boolean=True)
logical_or = nondiff("logical_or", template="{0} or {1}", boolean=True)
logical_not = nondiff("logical_not", template="not {0}", boolean=True)
for _name in ("isfinite", "isnan", "isinf"):
    globals()[_name] = nondiff(_name, template="math.%s({0})" % _name, boolean=True)
stop_gradient = nondiff("stop_gradient", lambda x: x)

# ---------------------------------------------------------------- elementwise unary

_LN2, _LN10 = np.log(2.0), np.log(10.0)

negative = linear("negative", np.negative, lambda g, ans, x: negative(g), template="-{0}")
exp = elementwise("exp", lambda ans, x: ans, saves="ans", template="math.exp({0})")
exp2 = elementwise("exp2", lambda ans, x: ans * _LN2, saves="ans", template="2.0 ** {0}")
expm1 = elementwise("expm1", lambda ans, x: ans + 1.0, saves="ans", template="math.expm1({0})")
log = elementwise("log", lambda ans, x: 1.0 / x, template="math.log({0})")
log2 = elementwise("log2", lambda ans, x: 1.0 / (x * _LN2), template="math.log2({0})")
log10 = elementwise("log10", lambda ans, x: 1.0 / (x * _LN10), template="math.log10({0})")
log1p = elementwise("log1p", lambda ans, x: 1.0 / (1.0 + x), template="math.log1p({0})")
sin = elementwise("sin", lambda ans, x: cos(x), template="math.sin({0})")
cos = elementwise("cos", lambda ans, x: negative(sin(x)), template="math.cos({0})")
tan = elementwise("tan", lambda ans, x: 1.0 + ans * ans, saves="ans", template="math.tan({0})")
arcsin = elementwise("arcsin", lambda ans, x: 1.0 / sqrt(1.0 - x * x), template="math.asin({0})")
arccos = elementwise("arccos", lambda ans, x: -1.0 / sqrt(1.0 - x * x), template="math.acos({0})")
arctan = elementwise("arctan", lambda ans, x: 1.0 / (1.0 + x * x), template="math.atan({0})")
sinh = elementwise("sinh", lambda ans, x: cosh(x), template="math.sinh({0})")
cosh = elementwise("cosh", lambda ans, x: sinh(x), template="math.cosh({0})")
tanh = elementwise("tanh", lambda ans, x: 1.0 - ans * ans, saves="ans", template="math.tanh({0})")
arcsinh = elementwise("arcsinh", lambda ans, x: 1.0 / sqrt(x * x + 1.0), template="math.asinh({0})")
arccosh = elementwise("arccosh", lambda ans, x: 1.0 / sqrt(x * x - 1.0), template="math.acosh({0})")
arctanh = elementwise("arctanh", lambda ans, x: 1.0 / (1.0 - x * x), template="math.atanh({0})")
sqrt = elementwise("sqrt", lambda ans, x: 0.5 / ans, saves="ans", template="math.sqrt({0})")
cbrt = elementwise("cbrt", lambda ans, x: 1.0 / (3.0 * ans * ans), saves="ans")
square = elementwise("square", lambda ans, x: 2.0 * x, template="{0} * {0}")
reciprocal = elementwise("reciprocal", lambda ans, x: negative(ans * ans), saves="ans", template="1.0 / {0}")


def _safe(ans):
    """``ans`` with its zeros replaced by 1 (a divisor whose zeros are handled by the caller)."""
    return where(raw(ans) == 0, 1.0, ans)


def _abs_vjp(g, ans, x):
    # |z|: δ|z| = Re(conj(z) δz)/|z|, so the cotangent is g·conj(z)/|z| (0 at z = 0, as autograd)
    if is_complex(x):
        return g * conjugate(x) / _safe(ans)
    return g * sign(x)


def _abs_jvp(t, ans, x):
    if is_complex(x):
        return real(conjugate(x) * t) / _safe(ans)
    return t * sign(x)


absolute = declare("absolute", np.absolute, [_abs_vjp], [_abs_jvp], saves="both", template="abs({0})")


def _to_complex_like(g, x):
    """A real cotangent ``g`` given the complex dtype of ``x`` (numpy's promotion)."""
    return g + 0j if is_complex(x) and not is_complex(g) else g


real = declare("real", np.real, [lambda g, ans, x: _to_complex_like(g, x)], [lambda t, ans, x: real(t)],
               saves="args")
# Im z = Re(−i z): the cotangent is −i·g (and nothing for a real input, whose imaginary part is 0)
imag = declare("imag", np.imag, [lambda g, ans, x: -1j * g if is_complex(x) else 0.0 * g],
               [lambda t, ans, x: imag(t)], saves="args")
conjugate = declare("conjugate", np.conjugate, [lambda g, ans, x: conjugate(g)],
                    [lambda t, ans, x: conjugate(t)], saves="none")

# ---------------------------------------------------------------- elementwise binary

add = declare("add", _through_operator(np.add, operator.add), [lambda g, ans, x, y: g, lambda g, ans, x, y: g],
              [lambda t, ans, x, y: t, lambda t, ans, x, y: t], saves="none", template="{0} + {1}")
subtract = declare("subtract", _through_operator(np.subtract, operator.sub),
                   [lambda g, ans, x, y: g, lambda g, ans, x, y: negative(g)],
                   [lambda t, ans, x, y: t, lambda t, ans, x, y: negative(t)], saves="none", template="{0} - {1}")
multiply = elementwise("multiply", lambda ans, x, y: y, lambda ans, x, y: x, template="{0} * {1}",
                       impl=_through_operator(np.multiply, operator.mul))
divide = elementwise("divide", lambda ans, x, y: divide(1.0, y), lambda ans, x, y: negative(ans) / y,
                     saves="both", template="{0} / {1}", impl=_through_operator(np.divide, operator.truediv))


def _power_dx(ans, x, y):
    """∂(x^y)/∂x = y x^(y-1), and exactly 0 for a constant y = 0 (x^0 ≡ 1): otherwise repeated
    differentiation of an integer power at x = 0 would reach 0 · 0^(-1) = NaN."""
    if type(y) is not Box and np.all(np.asarray(raw(y)) == 0):
        return np.zeros(np.shape(raw(x)))
    return y * power(x, y - 1.0)


def _power_dy(ans, x, y):
    if is_complex(x):
        return ans * log(x)
    # log(x) is only needed where x > 0; elsewhere the true partial is 0 or undefined
    return ans * log(where(raw(x) > 0, x, 1.0))


power = elementwise("power", _power_dx, _power_dy, saves="both", template="{0} ** {1}",
                    impl=_through_operator(np.power, operator.pow))


def _tie(a, b):
    """Subgradient weight of the first argument of maximum(a, b): 1, 0, or 1/2 at ties."""
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


def _nan_tie(a, b):
    """Weight of the first argument of fmax(a, b): as _tie, but a NaN loses (numpy's fmax)."""
    a_nan, b_nan = np.isnan(a), np.isnan(b)
    return np.where(a_nan, 0.0, np.where(b_nan, 1.0, _tie(a, b)))


maximum = elementwise("maximum", lambda ans, x, y: _tie(raw(x), raw(y)), lambda ans, x, y: _tie(raw(y), raw(x)),
                      template="_maximum({0}, {1})",
                      helper=("_maximum", "def _maximum(a, b):\n    return a if (a >= b or a != a) else b\n"))
minimum = elementwise("minimum", lambda ans, x, y: _tie(raw(y), raw(x)), lambda ans, x, y: _tie(raw(x), raw(y)),
                      template="_minimum({0}, {1})",
                      helper=("_minimum", "def _minimum(a, b):\n    return a if (a <= b or a != a) else b\n"))
fmax = elementwise("fmax", lambda ans, x, y: _nan_tie(raw(x), raw(y)), lambda ans, x, y: _nan_tie(raw(y), raw(x)),
                   template="_fmax({0}, {1})", helper=("_fmax", (
                       "def _fmax(a, b):\n    if a != a:\n        return b\n    if b != b:\n        return a\n"
                       "    return a if a >= b else b\n")))
fmin = elementwise("fmin", lambda ans, x, y: _nan_tie(-raw(x), -raw(y)),
                   lambda ans, x, y: _nan_tie(-raw(y), -raw(x)),
                   template="_fmin({0}, {1})", helper=("_fmin", (
                       "def _fmin(a, b):\n    if a != a:\n        return b\n    if b != b:\n        return a\n"
                       "    return a if a <= b else b\n")))
arctan2 = elementwise("arctan2", lambda ans, y, x: x / (x * x + y * y), lambda ans, y, x: negative(y) / (x * x + y * y),
                      template="math.atan2({0}, {1})")


def _safe_ratio(a, h):
    """a / h, and 0 where h = 0 (hypot at the origin: the subgradient 0, as abs at 0)."""
    return where(raw(h) == 0, 0.0, a / _safe(h))


hypot = elementwise("hypot", lambda ans, x, y: _safe_ratio(x, ans), lambda ans, x, y: _safe_ratio(y, ans),
                    saves="both", template="math.hypot({0}, {1})")
# logaddexp's partials exp(x1 - ans) are the logistic sigmoid of x1 - x2, smooth everywhere:
# at ties each is 1/2 and the second derivative 1/4 (not the 0 a max/|x1 - x2| form gives)
logaddexp = elementwise(
    "logaddexp", lambda ans, x, y: exp(x - ans), lambda ans, x, y: exp(y - ans), saves="both",
    template="_logaddexp({0}, {1})", helper=("_logaddexp", (
        "def _logaddexp(a, b):\n    if a == b:\n        return a + 0.6931471805599453\n"
        "    m = a if a > b else b\n    return m + math.log1p(math.exp(-abs(a - b)))\n")))
logaddexp2 = elementwise(
    "logaddexp2", lambda ans, x, y: exp2(x - ans), lambda ans, x, y: exp2(y - ans), saves="both",
    template="_logaddexp2({0}, {1})", helper=("_logaddexp2", (
        "def _logaddexp2(a, b):\n    if a == b:\n        return a + 1.0\n"
        "    m = a if a > b else b\n    return m + math.log1p(2.0 ** (-abs(a - b))) / 0.6931471805599453\n")))
remainder = elementwise("remainder", lambda ans, x, y: np.ones(np.shape(raw(x))),
                        lambda ans, x, y: negative(floor(raw(x) / raw(y))), template="_remainder({0}, {1})",
                        helper=("_remainder", (
                            "def _remainder(a, b):\n    if b == 0.0 or a != a or b != b or math.isinf(a):\n"
                            "        return math.nan\n    if math.isinf(b):\n"
                            "        return a if (a == 0.0 or (a > 0) == (b > 0)) else b\n"
                            "    r = np.fmod(a, b)\n    if r != 0.0 and (r < 0) != (b < 0):\n        r += b\n"
                            "    return r\n")))
fmod = elementwise("fmod", lambda ans, x, y: np.ones(np.shape(raw(x))),
                   lambda ans, x, y: negative(trunc(raw(x) / raw(y))), template="_fmod({0}, {1})",
                   helper=("_fmod", ("def _fmod(a, b):\n    if b == 0.0 or math.isinf(a) or a != a or b != b:\n"
                                     "        return math.nan\n    return np.fmod(a, b)\n")))

where = declare("where", np.where, [None, lambda g, ans, c, x, y: where(c, g, 0.0),
                                    lambda g, ans, c, x, y: where(c, 0.0, g)],
                [None, lambda t, ans, c, x, y: where(c, t, 0.0), lambda t, ans, c, x, y: where(c, 0.0, t)],
                saves="args", template="{1} if {0} else {2}", arity=3)

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


sum_ = linear("sum", lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
              lambda g, ans, x, axis=None, keepdims=False:
              broadcast_to(_keep(g, shape(x), axis, keepdims), shape=shape(x)))


def _extremum_weights(ans, x, axis, keepdims):
    """Where ``x`` attains the reduction's value, weighted 1/count (ties share evenly)."""
    hit = raw(x) == raw(_keep(raw(ans), shape(x), axis, keepdims))
    return hit / np.sum(hit, axis=axis, keepdims=True)


def _extremum_vjp(g, ans, x, axis=None, keepdims=False):
    return _keep(g, shape(x), axis, keepdims) * _extremum_weights(ans, x, axis, keepdims)


def _extremum_jvp(t, ans, x, axis=None, keepdims=False):
    return sum_(t * _extremum_weights(ans, x, axis, keepdims), axis=axis, keepdims=keepdims)


amax = declare("max", lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
               [_extremum_vjp], [_extremum_jvp])
amin = declare("min", lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims),
               [_extremum_vjp], [_extremum_jvp])


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


prod = declare("prod", lambda x, axis=None, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims),
               [lambda g, ans, x, axis=None, keepdims=False:
                _keep(g, shape(x), axis, keepdims) * _prod_others(ans, x, axis, keepdims)],
               [lambda t, ans, x, axis=None, keepdims=False:
                sum_(t * _prod_others(ans, x, axis, keepdims), axis=axis, keepdims=keepdims)])


def _flip(x, axis):
    return getitem(x, idx=(slice(None),) * axis + (slice(None, None, -1),))


cumsum = linear("cumsum", lambda x, axis: np.cumsum(x, axis=axis),
                lambda g, ans, x, axis: _flip(cumsum(_flip(g, axis), axis=axis), axis))

# ---------------------------------------------------------------- shape and indexing

reshape = linear("reshape", lambda x, shape: np.reshape(x, shape),
                 lambda g, ans, x, shape: reshape(g, shape=np.shape(raw(x))))
transpose = linear("transpose", lambda x, axes: np.transpose(x, axes),
                   lambda g, ans, x, axes: transpose(g, axes=tuple(np.argsort(axes))))
broadcast_to = linear("broadcast_to", lambda x, shape: np.broadcast_to(x, shape),
                      lambda g, ans, x, shape: sum_to(g, np.shape(raw(x))))


def _concat_vjp_all(g, ans, args, params, argnums):
    axis = params["axis"]
    offsets = np.cumsum([0] + [shape(a)[axis] for a in args])
    pre = (slice(None),) * axis
    return [getitem(g, idx=pre + (slice(offsets[i], offsets[i + 1]),)) for i in argnums]


def _zeros_of(a, like=None):
    dt = np.result_type(raw(a), raw(like)) if like is not None else np.result_type(raw(a))
    return np.zeros(shape(a), dtype=np.result_type(dt, np.float64))


concatenate = declare("concatenate", lambda *xs, axis: np.concatenate(xs, axis=axis), saves="none",
                      vjp_all=_concat_vjp_all,
                      jvp_all=lambda ts, ans, args, params: concatenate(
                          *[_zeros_of(a) if t is None else t for t, a in zip(ts, args)], **params))


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


getitem = linear("getitem", lambda x, idx: x[idx], lambda g, ans, x, idx: untake(g, idx=idx, shape=shape(x)))
untake = linear("untake", _untake_impl,  # the adjoint of indexing: scatter-add into zeros
                lambda g, ans, x, idx, shape: getitem(g, idx=idx))


def _segment_sum_impl(data, segment_ids, num_segments):
    if scatter.applies(data, segment_ids):
        return scatter.scatter_add_rows(data, segment_ids, num_segments)
    out = np.zeros_like(data, shape=(num_segments,) + np.shape(data)[1:], dtype=np.result_type(data, np.float64))
    np.add.at(out, segment_ids, data)
    return out


segment_sum = linear("segment_sum", _segment_sum_impl,
                     lambda g, ans, data, segment_ids, num_segments: getitem(g, idx=segment_ids))
tril = linear("tril", lambda x, k=0: np.tril(x, k), lambda g, ans, x, k=0: tril(g, k=k))
triu = linear("triu", lambda x, k=0: np.triu(x, k), lambda g, ans, x, k=0: triu(g, k=k))

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


matmul = declare("matmul", np.matmul, [_matmul_vjp_a, _matmul_vjp_b],
                 [lambda t, ans, a, b: matmul(t, b), lambda t, ans, a, b: matmul(a, t)], saves="args")


def _einsum_vjp_all(g, ans, args, params, argnums):
    ins, out = params["subscripts"].split("->")
    ins = ins.split(",")
    cts = []
    for i in argnums:
        target = ins[i]
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


def _einsum_impl(*operands, subscripts):
    # operands never repeat an index (diffsim.numpy.einsum takes diagonals first), so the rules hold
    return np.einsum(subscripts, *operands, optimize=len(operands) > 2)


einsum = declare("einsum", _einsum_impl, saves="args", vjp_all=_einsum_vjp_all, jvp_all=_einsum_jvp_all)

# ---------------------------------------------------------------- linear algebra (batched over leading axes)


def _col(b, a=None):
    """numpy.linalg.solve treats a 1-D b as one right-hand side vector."""
    return len(shape(b)) == 1


def _last2(a):
    n = len(shape(a))
    return (n - 2, n - 1)


def _eye(n):
    return np.eye(n)


def _solve_vjp_b(g, ans, a, b):
    if _col(b, a) and len(shape(a)) > 2:  # a stack of systems with one vector b: g is a stack of vectors
        return squeeze_axis(solve(_swap(a), expand(g, -1)), -1)
    return solve(_swap(a), g)


def _solve_vjp_a(g, ans, a, b):
    gb = _solve_vjp_b(g, ans, a, b)
    if _col(b, a):
        return negative(multiply(expand(gb, -1), expand(ans, -2)))
    return negative(matmul(gb, _swap(ans)))


solve = declare("solve", np.linalg.solve, [_solve_vjp_a, _solve_vjp_b], [
    lambda t, ans, a, b: negative(squeeze_axis(solve(a, matmul(t, expand(ans, -1))), -1)
                                  if _col(b, a) else solve(a, matmul(t, ans))),
    lambda t, ans, a, b: solve(a, t)])
inv = declare("inv", np.linalg.inv, [lambda g, ans, a: negative(matmul(_swap(ans), matmul(g, _swap(ans))))],
              [lambda t, ans, a: negative(matmul(ans, matmul(t, ans)))], saves="ans")
det = declare("det", np.linalg.det, [lambda g, ans, a: expand(expand(g * ans, -1), -1) * _swap(inv(a))],
              [lambda t, ans, a: ans * sum_(_swap(inv(a)) * t, axis=_last2(a))])
# log|det a|: δ = Re tr(a⁻¹ δa), so the same cotangent a⁻ᵀ serves real and complex a
logabsdet = declare("logabsdet", lambda a: np.linalg.slogdet(a)[1],
                    [lambda g, ans, a: expand(expand(g, -1), -1) * _swap(inv(a))],
                    [lambda t, ans, a: real(sum_(_swap(inv(a)) * t, axis=_last2(a)))
                     if is_complex(a) else sum_(_swap(inv(a)) * t, axis=_last2(a))], saves="args")


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


cholesky = declare("cholesky", np.linalg.cholesky, [_cholesky_vjp], [_cholesky_jvp], saves="ans")


# Decompositions with several outputs return them packed along the last axis of one array, so
# that each is one tape node; diffsim.linalg unpacks them with getitem (differentiable).
def pack(parts, batch: tuple):
    """Concatenate arrays (each with leading axes ``batch``) flattened along one last axis."""
    flat = [reshape(p, shape=batch + (int(np.prod(shape(p)[len(batch):])),)) for p in parts]
    return concatenate(*flat, axis=len(batch))


def unpack(packed, shapes: list[tuple]):
    """The inverse of :func:`pack`: ``shapes`` are the trailing shapes of the parts."""
    batch = tuple(shape(packed)[:-1])
    out, start = [], 0
    for s in shapes:
        n = int(np.prod(s))
        out.append(reshape(getitem(packed, idx=(Ellipsis, slice(start, start + n))), shape=batch + tuple(s)))
        start += n
    return out


def _diag_embed(v):
    return expand(v, -1) * np.eye(shape(v)[-1])


def _diag_part(m):
    return sum_(m * np.eye(shape(m)[-1]), axis=(len(shape(m)) - 1,))


def _gap_inverse(w, squared=False):
    """F_ij = 1/(w_j − w_i) off the diagonal, 0 on it (1/(w_j² − w_i²) with ``squared``)."""
    if squared:
        w = w * w
    diff = expand(w, -2) - expand(w, -1)
    eye = np.eye(shape(w)[-1], dtype=bool)
    return where(eye, 0.0, 1.0 / where(eye, 1.0, diff))


def _eigh_parts(p, n):
    w, v = unpack(p, [(n,), (n, n)])
    return w, v


def _eigh_impl(a, UPLO="L"):
    w, v = np.linalg.eigh(a, UPLO=UPLO)
    return pack([w, v], w.shape[:-1])


def _hermitian_read(t, UPLO):
    """The matrix numpy's eigh actually uses for input (or tangent) ``t``: one triangle, the
    other its (conjugate) transpose, and the real part of the diagonal."""
    n = shape(t)[-1]
    tri = tril(t, k=-1) if UPLO == "L" else triu(t, k=1)
    other = conjugate(_swap(tri)) if is_complex(t) else _swap(tri)
    diag = real(t) * np.eye(n) if is_complex(t) else t * np.eye(n)
    return tri + other + diag


def _hermitian_read_adjoint(s_, UPLO):
    """The adjoint of :func:`_hermitian_read`: the cotangent on the triangle that is read."""
    n = shape(s_)[-1]
    other = conjugate(_swap(s_)) if is_complex(s_) else _swap(s_)
    tri = tril(s_ + other, k=-1) if UPLO == "L" else triu(s_ + other, k=1)
    return tri + (real(s_) if is_complex(s_) else s_) * np.eye(n)


def _eigh_vjp(g, ans, a, UPLO="L"):
    # A = V diag(w) Vᴴ: Ā = conj(V) (diag(w̄) + F ∘ (Vᵀ V̄)) Vᵀ for the Hermitian matrix read,
    # then carried to the triangle numpy reads (so the gradient is the exact one of numpy's eigh)
    n = shape(a)[-1]
    w, v = _eigh_parts(ans, n)
    gw, gv = unpack(g, [(n,), (n, n)])
    inner = _diag_embed(real(gw) if is_complex(gw) else gw) + _gap_inverse(w) * matmul(_swap(v), gv)
    vc = conjugate(v) if is_complex(v) else v
    return _hermitian_read_adjoint(matmul(vc, matmul(inner, _swap(v))), UPLO)


def _eigh_jvp(t, ans, a, UPLO="L"):
    n = shape(a)[-1]
    w, v = _eigh_parts(ans, n)
    vh = conjugate(_swap(v)) if is_complex(v) else _swap(v)
    dp = matmul(vh, matmul(_hermitian_read(t, UPLO), v))
    dw = _diag_part(dp)
    return pack([real(dw) if is_complex(dw) else dw, matmul(v, _gap_inverse(w) * dp)], tuple(shape(a)[:-2]))


eigh = declare("eigh", _eigh_impl, [_eigh_vjp], [_eigh_jvp], saves="both")


def _eig_impl(a):
    w, v = np.linalg.eig(a)
    return pack([w, v], w.shape[:-1])


def _eig_vjp(g, ans, a):
    # A = V diag(w) V⁻¹ with unit-norm columns of V (numpy's): the adjoint of the JVP below,
    # Ā = V⁻ᵀ (diag(w̄) + F ∘ (Vᵀ V̄₀)) Vᵀ, V̄₀ = V̄ − conj(V) Re(Σᵢ V̄ᵢₖ Vᵢₖ) (normalisation)
    n = shape(a)[-1]
    w, v = unpack(ans, [(n,), (n, n)])
    gw, gv = unpack(g, [(n,), (n, n)])
    c = sum_(gv * v, axis=(len(shape(v)) - 2,), keepdims=True)
    gv0 = gv - conjugate(v) * real(c)
    inner = _diag_embed(gw) + _gap_inverse(w) * matmul(_swap(v), gv0)
    return matmul(_swap(inv(v)), matmul(inner, _swap(v)))


def _eig_jvp(t, ans, a):
    n = shape(a)[-1]
    w, v = unpack(ans, [(n,), (n, n)])
    p = matmul(inv(v), matmul(t, v))
    dv0 = matmul(v, _gap_inverse(w) * p)
    norm_fix = real(sum_(conjugate(v) * dv0, axis=(len(shape(v)) - 2,), keepdims=True))
    return pack([_diag_part(p), dv0 - v * norm_fix], tuple(shape(a)[:-2]))


eig = declare("eig", _eig_impl, [_eig_vjp], [_eig_jvp], saves="both")


def _svd_impl(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return pack([u, s, vh], s.shape[:-1])


def _svd_shapes(a):
    m, n = shape(a)[-2:]
    k = min(m, n)
    return [(m, k), (k,), (k, n)]


def _conj(x):
    return conjugate(x) if is_complex(x) else x


def _H(x):
    """The conjugate transpose of the last two axes."""
    return _conj(_swap(x))


def _svd_vjp(g, ans, a):
    # the adjoint of the JVP below under the transpose convention (real and complex a):
    # Ā = conj(U) P̄ Vᵀ + Ū S⁻¹ Vᵀ + conj(U) S⁻¹ V̄ᴴ, V = Vhᴴ, V̄ = V̄hᴴ, with J = UᵀŪ, K = VᵀV̄ and
    # P̄ = diag(Re s̄) + (J∘F + (J∘F)ᴴ) S + S (K∘F + (K∘F)ᴴ) + i diag(Im J)/S − J S⁻¹ − S⁻¹ V̄ᴴ conj(V)
    u, s, vh = unpack(ans, _svd_shapes(a))
    gu, gs, gvh = unpack(g, _svd_shapes(a))
    v, gv = _H(vh), _H(gvh)
    f = _gap_inverse(s, squared=True)
    srow, scol = expand(s, -2), expand(s, -1)
    j, k = matmul(_swap(u), gu), matmul(_swap(v), gv)
    jf, kf = j * f, k * f
    pbar = _diag_embed(real(gs) if is_complex(gs) else gs) + (jf + _H(jf)) * srow + scol * (kf + _H(kf))
    pbar = pbar - j / srow - matmul(_H(gv), _conj(v)) / scol
    if is_complex(j):
        pbar = pbar + 1j * _diag_embed(imag(_diag_part(j)) / s)
    out = matmul(_conj(u), matmul(pbar, _swap(v)))
    return out + matmul(gu / srow, _swap(v)) + matmul(_conj(u) / srow, _H(gv))


def _svd_jvp(t, ans, a):
    # A = U S Vᴴ, dP = Uᴴ dA V: dS = Re diag dP, Ω_U = F∘(dP S + S dPᴴ) (+ i Im diag(dP)/S, the
    # phase put on U), Ω_V = F∘(S dP + dPᴴ S), F_ij = 1/(s_j² − s_i²) (Townsend 2016, complex form)
    u, s, vh = unpack(ans, _svd_shapes(a))
    v = _H(vh)
    dp = matmul(_H(u), matmul(t, v))
    dpd = _diag_part(dp)
    ds_ = real(dpd) if is_complex(dpd) else dpd
    f = _gap_inverse(s, squared=True)
    srow, scol = expand(s, -2), expand(s, -1)
    om_u = f * (dp * srow + scol * _H(dp))
    if is_complex(dp):
        om_u = om_u + 1j * _diag_embed(imag(dpd) / s)
    om_v = f * (scol * dp + _H(dp) * srow)
    du = matmul(u, om_u) + (matmul(t, v) - matmul(u, dp)) / srow
    dv = matmul(v, om_v) + (matmul(_H(t), u) - matmul(v, _H(dp))) / srow
    return pack([du, ds_, _H(dv)], tuple(shape(a)[:-2]))


svd = declare("svd", _svd_impl, [_svd_vjp], [_svd_jvp], saves="both")


def _svdvals_uv(a):
    u, _, vh = unpack(svd(a), _svd_shapes(a))
    return u, vh


def _svdvals_jvp(t, ans, a):
    u, vh = _svdvals_uv(a)
    d = _diag_part(matmul(_H(u), matmul(t, _H(vh))))
    return real(d) if is_complex(d) else d


# s = Re diag(Uᴴ A V): s̄ gives Ā = conj(U) diag(s̄) conj(Vh)
svdvals = declare("svdvals", lambda a: np.linalg.svd(a, compute_uv=False), [
    lambda g, ans, a: (lambda u, vh: matmul(_conj(u) * expand(g, -2), _conj(vh)))(*_svdvals_uv(a))],
    [_svdvals_jvp], saves="args")


def _pinv_vjp(g, ans, a, **params):
    # the adjoint of Golub & Pereyra (1973), eq. 4.12 (constant rank)
    x = ans
    m, n = shape(a)[-2:]
    gt = _swap(g)
    out = negative(matmul(_swap(x), matmul(g, _swap(x))))
    out = out + matmul(np.eye(m) - matmul(a, x), matmul(gt, matmul(x, _swap(x))))
    return out + matmul(matmul(_swap(x), x), matmul(gt, np.eye(n) - matmul(x, a)))


def _pinv_jvp(t, ans, a, **params):
    x = ans
    m, n = shape(a)[-2:]
    tt = _swap(t)
    out = negative(matmul(x, matmul(t, x)))
    out = out + matmul(matmul(x, _swap(x)), matmul(tt, np.eye(m) - matmul(a, x)))
    return out + matmul(np.eye(n) - matmul(x, a), matmul(tt, matmul(_swap(x), x)))


pinv = declare("pinv", lambda a, **params: np.linalg.pinv(a, **params), [_pinv_vjp], [_pinv_jvp])


def _qr_impl(a):
    q, r = np.linalg.qr(a, mode="reduced")
    return pack([q, r], q.shape[:-2])


def _qr_parts(p, a):
    m, n = shape(a)[-2:]
    return unpack(p, [(m, n), (n, n)])


def _right_solve_t(x, r):
    """x R⁻ᵀ for upper-triangular R (a transposed solve)."""
    return _swap(solve(r, _swap(x)))


def _qr_vjp(g, ans, a):
    # the adjoint of the JVP below (m >= n, reduced QR)
    q, r = _qr_parts(ans, a)
    gq, gr = _qr_parts(g, a)
    w = matmul(_swap(q), gq) - matmul(gr, _swap(r))
    low = tril(w - _swap(w), k=-1)
    head = gq - matmul(q, matmul(_swap(q), gq)) + matmul(q, low)
    return _right_solve_t(head, r) + matmul(q, gr)


def _qr_jvp(t, ans, a):
    # Q^T dA R^-1 = Ω + dR R^-1 with Ω antisymmetric, dR R^-1 upper triangular
    q, r = _qr_parts(ans, a)
    t_rinv = _swap(solve(_swap(r), _swap(t)))
    c = matmul(_swap(q), t_rinv)
    low = tril(c, k=-1)
    om = low - _swap(low)
    dq = matmul(q, om) + t_rinv - matmul(q, c)
    dr = matmul(_swap(q), t) - matmul(om, r)
    return pack([dq, dr], tuple(shape(a)[:-2]))


qr = declare("qr", _qr_impl, [_qr_vjp], [_qr_jvp], saves="both")

# ---------------------------------------------------------------- discrete Fourier transforms
# The DFT matrix is symmetric, so under the transpose convention a c2c transform's cotangent
# rule is the same transform (same axes, same norm). rfft and irfft are only real-linear.


def _fftn_impl(x, axes, norm, inverse):
    return (np.fft.ifftn if inverse else np.fft.fftn)(x, axes=axes, norm=norm)


fftn_c = linear("fftn", _fftn_impl, lambda g, ans, x, axes, norm, inverse: fftn_c(
    g, axes=axes, norm=norm, inverse=inverse))


def _zero_pad(g, axis, n):
    """``g`` zero-padded to length n along ``axis``."""
    s = list(shape(g))
    if s[axis] == n:
        return g
    s[axis] = n - s[axis]
    return concatenate(g, np.zeros(tuple(s), dtype=np.result_type(raw(g), np.complex128)), axis=axis)


rfft_r = linear("rfft", lambda x, axis, norm: np.fft.rfft(x, axis=axis, norm=norm),
                lambda g, ans, x, axis, norm: real(fftn_c(_zero_pad(g, axis, shape(x)[axis]), axes=(axis,),
                                                          norm=norm, inverse=False)))


def _irfft_vjp(g, ans, y, n, axis, norm):
    # x_k = Σ_j c_j Re(y_j e^{2πijk/n}) (scaled by norm), c = 1 at j = 0 and at the Nyquist
    # frequency, 2 in between: ȳ = c ∘ ifft(x̄)[:m]
    m = shape(y)[axis]
    c = np.full(m, 2.0)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0
    c = c.reshape((m,) + (1,) * (len(shape(y)) - 1 - axis))
    full = fftn_c(g, axes=(axis,), norm=norm, inverse=True)
    return c * getitem(full, idx=(slice(None),) * axis + (slice(0, m),))


irfft_r = linear("irfft", lambda y, n, axis, norm: np.fft.irfft(y, n=n, axis=axis, norm=norm), _irfft_vjp)

# ---------------------------------------------------------------- control: checkpointing


def _call_impl(*leaves, fun):
    return fun(*leaves)


def _checkpoint_vjp_all(g, ans, args, params, argnums):
    from .transforms import vjp  # the backward pass re-runs the segment under a fresh tape

    cts = vjp(params["fun"], *args)[1](g)
    return [cts[i] for i in argnums]


def _checkpoint_jvp_all(ts, ans, args, params):
    from .transforms import jvp

    tangents = tuple(_zeros_of(a) if t is None else t for t, a in zip(ts, args))
    return jvp(params["fun"], args, tangents)[1]


remat = declare("checkpoint", _call_impl, saves="args", vjp_all=_checkpoint_vjp_all, jvp_all=_checkpoint_jvp_all)


def not_differentiable(name: str, why: str):
    """Raise for a function whose derivative diffsim does not provide, naming it and why."""
    raise NonDifferentiableError(f"{name} is not differentiable by diffsim {why}")
