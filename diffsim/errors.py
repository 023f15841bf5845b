"""Exceptions raised by diffsim; each message names what went wrong and what to do."""


class DiffsimError(Exception):
    """Base class of every diffsim exception."""


class NonDifferentiableError(DiffsimError, TypeError):
    """An operation the engine cannot differentiate was applied to a traced value."""


class GradientCheckError(DiffsimError, AssertionError):
    """Analytic and finite-difference derivatives disagree (raised by ``check_grads``)."""
