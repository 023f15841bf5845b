"""Exceptions raised by diffsim; each message names what went wrong and what to do."""


class DiffsimError(Exception):
    """Base class of every diffsim exception."""


class NonDifferentiableError(DiffsimError, TypeError):
    """An operation the engine cannot differentiate was applied to a traced value."""


class MissingRuleError(NonDifferentiableError, NotImplementedError):
    """A primitive has no derivative rule for the mode asked (register one with ds.defvjp / ds.defjvp)."""


class GradientCheckError(DiffsimError, AssertionError):
    """Analytic and finite-difference derivatives disagree (raised by ``check_grads``)."""


class ComputationFailed(DiffsimError, RuntimeError):
    """The computation ran but did not succeed (an optimiser that did not converge, an MD run that
    blew up): not the input's fault as such; the message says what to try."""
