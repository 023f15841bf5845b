"""Integrators with compiled rollouts and gradients (BPTT, checkpointed, adjoint, forward).

Schemes are Butcher tableaus (:mod:`diffsim.ode.tableaus`); gradient methods are small objects
(:mod:`diffsim.ode.gradients`), their names a shortcut.

>>> from diffsim.ode import ODEProblem, METHODS, Checkpointed
>>> METHODS
('bptt', 'checkpointed', 'adjoint', 'forward')
"""

from .gradients import (
    Adjoint,
    BacksolveWarning,
    Bptt,
    Checkpointed,
    Forward,
    Gradient,
    GradientMethod,
    GradientOptionError,
    gradient_method,
)
from .problem import METHODS, ODEProblem, Rollout
from .tableaus import TABLEAUS, ButcherTableau

__all__ = ["METHODS", "Adjoint", "BacksolveWarning", "Bptt", "ButcherTableau", "Checkpointed", "Forward",
           "Gradient", "GradientMethod", "GradientOptionError", "ODEProblem", "Rollout", "TABLEAUS",
           "gradient_method"]
