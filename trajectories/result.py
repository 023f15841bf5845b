"""The result of solving an optimal control problem, and its plot."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from diffsim.files import pyplot, write_figure
from diffsim.packing import pack, unpack


@dataclass
class Solution:
    """What a solver returns, successful or not: read ``status`` and ``message`` first.

    ``status`` is True only when the solver's optimality test holds (the interior-point solver and
    IPOPT: the scaled KKT error and the worst constraint violation at any node below tolerance);
    ``kkt`` holds the residuals at the returned point (stationarity, primal, complementarity,
    violation). ``costates`` are λ(t_k) = ∂J/∂x(t_k) on the grid ``t`` (the multipliers of the
    defects, the adjoint of the Lagrangian, or the costate of the boundary-value problem for the
    Pontryagin method); ``multipliers`` has every other multiplier by name."""

    status: bool
    message: str
    method: str
    gradient: str | None = None
    cost: float = float("nan")
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    x: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    u: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    costates: np.ndarray | None = None
    T: float = float("nan")
    iterations: int = 0
    gradient_evaluations: int = 0
    seconds: float = 0.0
    constraint_violation: float = 0.0
    extra: dict = field(default_factory=dict)
    solver: str = ""
    kkt: dict = field(default_factory=dict)
    multipliers: dict = field(default_factory=dict)
    gains: np.ndarray | None = None         # DDP: feedback gains K_k (N, m, n), δu_k = k_k + K_k δx_k
    feedforward: np.ndarray | None = None   # DDP: feed-forward terms k_k (N, m) of the last backward pass

    def __reduce__(self):
        """The compact wire form (a sweep's workers send thousands): every array of the solution
        and of its plain dicts in one buffer (:mod:`diffsim.packing`), the rest pickled as usual;
        the copy equals the original bit for bit, with writeable arrays."""
        return _unpickle_solution, (pack(self.__dict__),)

    @property
    def wall_time(self) -> float:
        """The solve's wall time in seconds (the older name of ``seconds``)."""
        return self.seconds

    def __str__(self) -> str:
        head = "solved" if self.status else "FAILED"
        how = self.method + (f"/{self.gradient}" if self.gradient else "") + (f"/{self.solver}" if self.solver else "")
        return (f"{head} [{how}] cost {self.cost:.8g}, "
                f"T {self.T:.6g}, {self.iterations} iterations, {self.gradient_evaluations} gradients, "
                f"{self.seconds:.3g} s, max constraint violation {self.constraint_violation:.1e}: {self.message}")

    def plot(self, path: str | None = None, names: tuple[list[str], list[str]] | None = None):
        """States, controls and costates against time; saved to ``path`` if given.
        Returns the matplotlib figure."""
        plt = pyplot(saving=path is not None)

        x_names, u_names = names or ([f"x{i}" for i in range(self.x.shape[1])],
                                     [f"u{i}" for i in range(self.u.shape[1])])
        panels = 3 if self.costates is not None else 2
        fig, axes = plt.subplots(panels, 1, figsize=(7, 2.6 * panels), sharex=True)
        for i in range(self.x.shape[1]):
            axes[0].plot(self.t, self.x[:, i], label=x_names[i])
        axes[0].set_ylabel("state")
        for i in range(self.u.shape[1]):
            if len(self.u) == len(self.t):   # controls at the nodes (collocation): interpolated
                axes[1].plot(self.t, self.u[:, i], label=u_names[i])
            else:
                axes[1].step(self.t[:-1], self.u[:, i], where="post", label=u_names[i])
        axes[1].set_ylabel("control")
        if self.costates is not None:
            for i in range(self.costates.shape[1]):
                axes[2].plot(self.t, self.costates[:, i], label=f"λ {x_names[i]}")
            axes[2].set_ylabel("costate")
        for ax in axes:
            ax.legend(fontsize=7, loc="best")
            ax.grid(alpha=0.3)
        axes[-1].set_xlabel("t")
        axes[0].set_title(f"{self.method}: cost {self.cost:.6g}" + ("" if self.status else " (FAILED)"))
        fig.tight_layout()
        if path is not None:
            write_figure(fig, path, dpi=120)
        return fig


def _unpickle_solution(state) -> Solution:
    solution = Solution.__new__(Solution)
    solution.__dict__.update(unpack(state))
    return solution
