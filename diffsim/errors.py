"""Exceptions raised by diffsim; each message names what went wrong and what to do."""


class DiffsimError(Exception):
    """Base class of every diffsim exception."""


class NonDifferentiableError(DiffsimError, TypeError):
    """An operation the engine cannot differentiate was applied to a traced value."""


class GradientCheckError(DiffsimError, AssertionError):
    """Analytic and finite-difference derivatives disagree (raised by ``check_grads``)."""


class ComputationFailed(DiffsimError, RuntimeError):
    """The computation ran but did not succeed (an optimiser that did not converge, an MD run that
    blew up): not the input's fault as such; the message says what to try."""
