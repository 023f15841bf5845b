"""Integrators with compiled rollouts and gradients (BPTT, checkpointed, adjoint, forward).

>>> from diffsim.ode import ODEProblem, METHODS
>>> METHODS
('bptt', 'checkpointed', 'adjoint', 'forward')
"""

from .problem import METHODS, BacksolveWarning, Gradient, ODEProblem, Rollout

__all__ = ["METHODS", "BacksolveWarning", "Gradient", "ODEProblem", "Rollout"]
