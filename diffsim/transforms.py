"""The user-facing transformations: grad, value_and_grad, vjp, jvp, jacobian, hessian, hvp,
checkpoint. Arguments and results may be nested tuples, lists and dicts of arrays.

>>> import diffsim as ds, diffsim.numpy as dnp
>>> f = lambda x, y: dnp.log(x + dnp.exp(y / x))
>>> dx, dy = ds.grad(f, argnums=(0, 1))(1.0, 2.0)
>>> round(float(dy), 6)  # e^2 / (1 + e^2)
0.880797
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from . import numpy as dnp
from . import primitives as _p
from .errors import NonDifferentiableError
from .interpreter import ForwardTrace, ReverseTrace, backward
from .tracer import SETITEM_HELP, Box, raw
from .tree import flatten, same_structure, unflatten


def _differentiable(leaf: Any) -> bool:
    """Float (or complex) leaves are differentiated; integer and boolean leaves are constants."""
    return np.issubdtype(np.result_type(raw(leaf)), np.inexact)


def _zeros_like(leaf: Any) -> np.ndarray:
    return np.zeros(np.shape(raw(leaf)), dtype=np.result_type(raw(leaf), np.float64))


def _argnums(argnums, nargs: int) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if nargs == 0:
        raise TypeError("the function was called with no arguments: there is nothing to differentiate")
    for n in nums:
        if not -nargs <= n < nargs:
            raise ValueError(f"argnums {argnums} refers to argument {n} but the function was given {nargs}")
    return tuple(n % nargs for n in nums)


def _check_numeric(name: str, leaf: Any) -> None:
    if isinstance(raw(leaf), (str, bytes)) or np.result_type(raw(leaf)) is np.dtype(object):
        raise TypeError(f"{name} must be numeric arrays, got {type(raw(leaf)).__name__}")


def _call(fun: Callable, args: tuple) -> Any:
    """``fun(*args)``, with numpy's error for a traced value stored into a numpy array
    (``a[0] = x``) replaced by one that names the functional alternative."""
    try:
        return fun(*args)
    except ValueError as err:
        if "setting an array element with a sequence" in str(err):
            raise NonDifferentiableError(f"{err} A traced value was probably assigned into a numpy array: "
                                         f"{SETITEM_HELP}") from err
        raise


def _substitute(fun: Callable, args: tuple, nums: tuple, kwargs: dict) -> Callable:
    """``fun`` as a function of the arguments at positions ``nums`` only, the others fixed."""

    def partial(*diff):
        full = list(args)
        for n, d in zip(nums, diff):
            full[n] = d
        return fun(*full, **kwargs)

    return partial


def vjp(fun: Callable, *primals: Any) -> tuple[Any, Callable]:
    """Evaluate ``fun(*primals)`` and return ``(value, vjp_fn)``; ``vjp_fn(cotangent)`` returns
    one cotangent per primal, each with that primal's structure. ``vjp_fn`` may be called many
    times.

    >>> import diffsim as ds, numpy as np
    >>> y, back = ds.vjp(lambda x: 3.0 * x, np.array([1.0, 2.0]))
    >>> back(np.array([1.0, 1.0]))
    (array([3., 3.]),)
    """
    trace = ReverseTrace()
    flat, tree = flatten(primals)
    boxes = []
    for leaf in flat:
        _check_numeric("vjp primals", leaf)
        boxes.append(trace.new_input(leaf) if _differentiable(leaf) else leaf)
    out = _call(fun, unflatten(tree, boxes))
    out_flat, out_tree = flatten(out)
    value = unflatten(out_tree, [o.value if type(o) is Box and o.trace is trace else o for o in out_flat])

    def vjp_fn(cotangent: Any) -> tuple:
        ct_flat, ct_tree = flatten(cotangent)
        if not same_structure(ct_tree, out_tree):
            raise ValueError("the cotangent must have the structure of the function's output "
                             f"({len(out_flat)} arrays), got {len(ct_flat)} arrays in another structure")
        seeds = []
        for o, ct in zip(out_flat, ct_flat):
            if np.shape(raw(ct)) != np.shape(raw(o)):
                raise ValueError(f"cotangent of shape {np.shape(raw(ct))} given for an output of "
                                 f"shape {np.shape(raw(o))}")
            if type(o) is Box and o.trace is trace:
                seeds.append((o.node, ct))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # NaN where numpy's is, as JAX
            grads = backward(trace, seeds) if seeds else {}
        cts = [grads[id(b.node)] if type(b) is Box and b.trace is trace and id(b.node) in grads
               else _zeros_like(b) for b in boxes]
        return unflatten(tree, cts)

    return value, vjp_fn


def value_and_grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
                   holomorphic: bool = False) -> Callable:
    """A function returning ``(fun(*args), gradient)``; with ``has_aux``, ``fun`` returns
    ``(scalar, aux)`` and the result is ``((scalar, aux), gradient)``.

    Complex numbers follow JAX and autograd: for a real-valued ``fun`` of complex ``z = x + iy``
    the gradient is ``∂f/∂x − i ∂f/∂y`` (so ``grad(lambda z: abs(z)**2)(3+4j) == 6-8j``; step
    along its conjugate to ascend); a real argument gets a real gradient. A complex-valued
    ``fun`` needs ``holomorphic=True`` (complex arguments), and then the result is ``f'(z)``.

    >>> import diffsim as ds
    >>> value, g = ds.value_and_grad(lambda x: x ** 2)(3.0)
    >>> float(value), float(g)
    (9.0, 6.0)
    """

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        nums = _argnums(argnums, len(args))

        partial = _substitute(fun, args, nums, kwargs)

        def pair_fun(*diff):
            out = partial(*diff)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError("with has_aux=True the function must return a pair (scalar, aux)")
                return out
            return out, None

        (value, aux), back = vjp(pair_fun, *[args[n] for n in nums])
        if np.size(raw(value)) != 1:  # a scalar, or an array of one element (as autograd allows)
            raise TypeError(
                f"grad needs a function with a scalar output, got shape {np.shape(raw(value))}; "
                "use ds.jacobian for vector outputs, or ds.vjp with a cotangent")
        out_dtype = np.result_type(raw(value))
        if not np.issubdtype(out_dtype, np.inexact):
            raise TypeError(f"grad needs a real-valued output, got dtype {out_dtype}")
        if holomorphic:
            for n in nums:
                for leaf in flatten(args[n])[0]:
                    if not np.issubdtype(np.result_type(raw(leaf)), np.complexfloating):
                        raise TypeError(f"grad with holomorphic=True needs complex arguments, got dtype "
                                        f"{np.result_type(raw(leaf))}; pass x + 0j")
        elif out_dtype.kind == "c":
            raise NonDifferentiableError(
                "grad of a complex-valued function: pass holomorphic=True if it is holomorphic (the result is "
                "then f'(z)), or differentiate a real value such as dnp.real(f), dnp.abs(f) ** 2")
        g = back((np.ones(np.shape(raw(value)), dtype=out_dtype), _tree_zeros(aux)))
        g = g[0] if isinstance(argnums, int) else g
        return ((value, aux) if has_aux else value), g

    return wrapped


def grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
         holomorphic: bool = False) -> Callable:
    """Gradient of a scalar-valued ``fun`` with respect to argument(s) ``argnums``.

    Complex arguments and ``holomorphic``: see :func:`value_and_grad`.

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> complex(ds.grad(lambda z: dnp.abs(z) ** 2)(3 + 4j))  # as JAX and autograd
    (6-8j)
    >>> complex(ds.grad(dnp.sin, holomorphic=True)(0j))
    (1+0j)

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> ds.grad(lambda x: dnp.sum(x ** 2))(dnp.array([1.0, 2.0]))
    array([2., 4.])
    """
    vg = value_and_grad(fun, argnums, has_aux, holomorphic)

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapped


def jvp(fun: Callable, primals: Sequence, tangents: Sequence) -> tuple[Any, Any]:
    """Forward mode: ``(fun(*primals), J @ tangents)``.

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> y, t = ds.jvp(dnp.sin, (0.0,), (2.0,))
    >>> float(y), float(t)
    (0.0, 2.0)
    """
    primals, tangents = tuple(primals), tuple(tangents)
    p_flat, p_tree = flatten(primals)
    t_flat, t_tree = flatten(tangents)
    if not same_structure(p_tree, t_tree):
        raise ValueError("tangents must have the same structure as primals")
    trace = ForwardTrace()
    boxes = []
    for k, (p, t) in enumerate(zip(p_flat, t_flat)):
        if np.shape(raw(t)) != np.shape(raw(p)):
            raise ValueError(f"tangent {k} has shape {np.shape(raw(t))} but its primal has shape "
                             f"{np.shape(raw(p))}")
        boxes.append(trace.new_input(p, t) if _differentiable(p) else p)
    out = _call(fun, unflatten(p_tree, boxes))
    o_flat, o_tree = flatten(out)
    vals, tans = [], []
    for o in o_flat:
        if type(o) is Box and o.trace is trace:
            t = o.node if o.node is not None else _zeros_like(o.value)
            if _p.is_complex(o.value) and not _p.is_complex(t):  # a real tangent of a complex value
                t = t + 0j
            vals.append(o.value)
            tans.append(t)
        else:
            vals.append(o)
            tans.append(_zeros_like(o))
    return unflatten(o_tree, vals), unflatten(o_tree, tans)


def _basis(leaf: Any):
    """The unit vectors of ``leaf``'s shape, one at a time."""
    shape = np.shape(raw(leaf))
    n = int(np.prod(shape))
    for k in range(n):
        e = np.zeros(n)
        e[k] = 1.0
        yield e.reshape(shape)


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Jacobian by reverse mode (one backward pass per output element): for an output of shape
    ``S`` and an input of shape ``T`` the result has shape ``S + T``; containers are kept.

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> ds.jacrev(lambda x: x ** 2)(dnp.array([1.0, 3.0]))
    array([[2., 0.],
           [0., 6.]])
    """

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        nums = _argnums(argnums, len(args))

        partial = _substitute(fun, args, nums, kwargs)

        diff_args = [args[n] for n in nums]
        value, back = vjp(partial, *diff_args)
        o_flat, o_tree = flatten(value)
        per_output = []
        for j, o in enumerate(o_flat):
            rows = []
            for e in _basis(o):
                ct = [e if i == j else _zeros_like(oo) for i, oo in enumerate(o_flat)]
                rows.append(back(unflatten(o_tree, ct)))
            blocks = _stack_rows(rows, np.shape(raw(o)), diff_args)
            per_output.append(blocks[0] if isinstance(argnums, int) else blocks)
        return unflatten(o_tree, per_output)

    return wrapped


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Jacobian by forward mode (one tangent pass per input element); same layout as jacrev.

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> ds.jacfwd(lambda x: dnp.sum(x) * x)(dnp.array([1.0, 2.0]))
    array([[4., 1.],
           [2., 5.]])
    """

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        nums = _argnums(argnums, len(args))
        columns = []  # per argnum: per input leaf: list of output trees
        value = None
        for n in nums:
            a_flat, a_tree = flatten(args[n])
            per_leaf = []
            for k, leaf in enumerate(a_flat):
                outs = []
                for e in _basis(leaf):
                    t_flat = [e if i == k else _zeros_like(x) for i, x in enumerate(a_flat)]
                    tangents = tuple(unflatten(a_tree, t_flat) if m == n else _tree_zeros(args[m])
                                     for m in range(len(args)))
                    value, t = jvp(lambda *a: fun(*a, **kwargs), args, tangents)
                    outs.append(t)
                per_leaf.append(outs)
            columns.append((a_flat, a_tree, per_leaf))
        if value is None:
            value = fun(*args, **kwargs)
        o_flat, o_tree = flatten(value)
        per_output = []
        for j, o in enumerate(o_flat):
            per_arg = []
            for a_flat, a_tree, per_leaf in columns:
                blocks = []
                for leaf, outs in zip(a_flat, per_leaf):
                    cols = [flatten(t)[0][j] for t in outs]
                    oshape, ishape = np.shape(raw(o)), np.shape(raw(leaf))
                    if cols:
                        m = dnp.stack([dnp.reshape(c, (-1,)) for c in cols], axis=1)
                    else:
                        m = np.zeros((int(np.prod(oshape)), 0))
                    blocks.append(dnp.reshape(m, oshape + ishape))
                per_arg.append(unflatten(a_tree, blocks))
            per_output.append(per_arg[0] if isinstance(argnums, int) else tuple(per_arg))
        return unflatten(o_tree, per_output)

    return wrapped


def _tree_zeros(tree):
    flat, td = flatten(tree)
    return unflatten(td, [_zeros_like(x) for x in flat])


def _stack_rows(rows: list, out_shape: tuple, diff_args: list):
    """rows[k] is a tuple (one per argnum) of cotangent trees for output element k."""
    result = []
    for m, arg in enumerate(diff_args):
        a_flat, a_tree = flatten(arg)
        leaves = []
        for li, leaf in enumerate(a_flat):
            ishape = np.shape(raw(leaf))
            r = [flatten(row[m])[0][li] for row in rows]
            if r:
                block = dnp.reshape(dnp.stack(r), out_shape + ishape)
            else:
                block = np.zeros(out_shape + ishape)
            leaves.append(block)
        result.append(unflatten(a_tree, leaves))
    return tuple(result)


jacobian = jacrev


def hessian(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Hessian of a scalar function: forward-over-reverse, ``jacfwd(grad(fun))``.

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> ds.hessian(lambda x: x[0] ** 2 * x[1])(dnp.array([1.0, 2.0]))
    array([[4., 2.],
           [2., 0.]])
    """
    return jacfwd(grad(fun, argnums), argnums)


def hvp(fun: Callable, primals: Sequence, tangents: Sequence) -> tuple:
    """Hessian-vector product by forward-over-reverse, without forming the Hessian:
    returns ``H @ v`` for every primal (a tuple with the structure of ``primals``).

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> ds.hvp(lambda x: dnp.sum(x ** 3), (dnp.array([1.0, 2.0]),), (dnp.array([1.0, 0.0]),))
    (array([6., 0.]),)
    """
    primals = tuple(primals)
    g = grad(fun, argnums=tuple(range(len(primals))))
    return jvp(g, primals, tuple(tangents))[1]


def checkpoint(fun: Callable) -> Callable:
    """Rematerialisation: ``fun``'s intermediate values are not kept on the tape but recomputed
    in the backward pass. Trades one extra forward evaluation of ``fun`` for the memory of its
    interior. ``fun`` takes arrays (or containers of them) and returns one array.

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> block = ds.checkpoint(lambda x: dnp.tanh(dnp.tanh(x)))
    >>> float(ds.grad(lambda x: dnp.sum(block(x)))(0.0))
    1.0
    """

    @functools.wraps(fun)
    def wrapped(*args):
        flat, tree = flatten(args)

        def flat_fun(*leaves):
            out = fun(*unflatten(tree, list(leaves)))
            if isinstance(out, (tuple, list, dict)):
                raise TypeError("ds.checkpoint supports functions returning one array; "
                                "concatenate several outputs into one")
            return out

        return _p.remat(*flat, fun=flat_fun)

    return wrapped


def stop_gradient(x: Any) -> Any:
    """``x`` as a constant: no derivative flows through it (at any order).

    >>> import diffsim as ds
    >>> float(ds.grad(lambda x: x * ds.stop_gradient(x))(3.0))
    3.0
    """
    flat, tree = flatten(x)
    return unflatten(tree, [raw(leaf) for leaf in flat])
