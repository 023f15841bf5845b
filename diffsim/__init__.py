"""diffsim: one reverse-mode engine for differentiable physics.

>>> import diffsim as ds, diffsim.numpy as dnp
>>> float(ds.grad(lambda x: dnp.sin(x) * x)(0.0))
0.0
"""

from . import (
    numpy,  # noqa: F401  (installs array behaviour on traced values)
    tree,  # noqa: F401
)
from .checks import check_grads
from .codegen import Kernel, compile, kernel
from .errors import DiffsimError, GradientCheckError, MissingRuleError, NonDifferentiableError
from .primitives import defjvp, defvjp
from .tracer import Primitive
from .transforms import (
    checkpoint,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    stop_gradient,
    value_and_grad,
    vjp,
)

__version__ = "0.1.0"


def primitive(fun, name: str | None = None) -> Primitive:
    """Make ``fun`` (plain numpy in, numpy out; e.g. a Numba kernel) a primitive of the engine.
    Give it derivative rules with :func:`defvjp` and :func:`defjvp`; it then composes with
    every transformation, to any order if the rules are written with ``diffsim.numpy``.
    Positional arguments are differentiable inputs, keyword arguments static parameters.

    >>> import numpy as np, diffsim as ds
    >>> square = ds.primitive(lambda x: x * x, name="square")
    >>> ds.defvjp(square, lambda g, ans, x: 2.0 * g * x)
    >>> float(ds.grad(square)(3.0))
    6.0
    """
    return Primitive(name or getattr(fun, "__name__", "custom"), fun)


__all__ = ["check_grads", "checkpoint", "compile", "kernel", "Kernel", "defjvp", "defvjp", "grad", "hessian",
           "hvp", "jacfwd", "jacobian", "jacrev", "jvp", "primitive", "stop_gradient", "value_and_grad", "vjp",
           "DiffsimError", "GradientCheckError", "MissingRuleError", "NonDifferentiableError", "Primitive"]
