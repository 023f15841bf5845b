"""Figures for potentials: the learning curve, the force parity plot, and the MD checks (NVE
energy, g(r) and MSD against the reference). Each returns its figure and saves it to ``path``
if given; the MD ones draw into ``ax`` when one is passed.

>>> from ase.build import bulk
>>> from ase.calculators.emt import EMT
>>> from potentials.md import run_md
>>> run = run_md(bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2), EMT(), steps=20, interval=5)
>>> fig = nve_energy(run)
>>> fig.axes[0].get_xlabel()
't (ps)'
"""

from __future__ import annotations

import numpy as np

from diffsim.files import pyplot, write_figure


def _plt(path):
    return pyplot(saving=path is not None)


def learning_curve(history, path: str | None = None):
    """Training and validation loss, and validation force MAE, per epoch."""
    plt = _plt(path)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].semilogy(history.train_loss, label="train")
    if history.val_loss:
        ax[0].semilogy(history.val_loss, label="validation")
    ax[0].set_xlabel("epoch")
    ax[0].set_title("loss")
    ax[0].legend()
    if history.val_force_mae:
        ax[1].plot(history.val_force_mae, label="forces (meV/Å)")
        ax[1].plot(history.val_energy_mae, label="energy (meV/atom)")
        ax[1].set_yscale("log")
        ax[1].legend()
    ax[1].set_xlabel("epoch")
    ax[1].set_title("validation MAE")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    if path:
        write_figure(fig, path)
    return fig


def force_parity(reference: np.ndarray, predicted: np.ndarray, path: str | None = None, title: str = "",
                 ax=None):
    """Predicted against reference force components (eV/Å), with the MAE; into ``ax`` if given."""
    fig, ax = _axes(path, ax, (4.5, 4.5))
    ref, pred = np.ravel(reference), np.ravel(predicted)
    lim = float(np.max(np.abs(ref))) * 1.05
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=1)
    ax.scatter(ref, pred, s=3, alpha=0.4)
    ax.set_xlabel("reference force (eV/Å)")
    ax.set_ylabel("predicted force (eV/Å)")
    ax.set_title(f"{title} MAE {1000 * np.mean(np.abs(ref - pred)):.1f} meV/Å")
    ax.set_aspect("equal")
    return _finish(fig, path)


def _axes(path, ax, figsize):
    """Draw into ``ax``, or into a new figure's single axes."""
    plt = _plt(path)
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def _finish(fig, path):
    if path:
        fig.tight_layout()
        write_figure(fig, path)
    return fig


def nve_energy(run, path: str | None = None, ax=None):
    """Total energy per atom of an NVE :class:`~potentials.md.MDRun` (meV/atom, relative to the
    start), titled with the drift from a linear fit."""
    fig, ax = _axes(path, ax, (5.5, 3.8))
    ax.plot(run.times, 1000 * (run.total - run.total[0]), label="total")
    ax.set_xlabel("t (ps)")
    ax.set_ylabel("meV/atom")
    ax.set_title(f"NVE total energy, drift {run.drift:.2g} meV/atom/ps")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def radial_distribution_plot(r, g_reference, g_learned, path: str | None = None, ax=None, difference=None):
    """g(r) of the reference potential and of the learned one.

    >>> import numpy as np
    >>> r = np.linspace(0.1, 6.0, 50)
    >>> fig = radial_distribution_plot(r, np.exp(-(r - 2.5) ** 2), np.exp(-(r - 2.55) ** 2))
    """
    fig, ax = _axes(path, ax, (5.5, 3.8))
    ax.plot(r, g_reference, label="reference")
    ax.plot(r, g_learned, "--", label="learned")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_title("g(r)" + (f"  (relative L1 difference {difference:.3f})" if difference is not None else ""))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def msd_plot(times, msd_reference, msd_learned, path: str | None = None, ax=None):
    """Mean-squared displacement (Å²) against time for the reference and the learned potential.

    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 11)
    >>> fig = msd_plot(t, 0.1 * t, 0.11 * t)
    """
    fig, ax = _axes(path, ax, (5.5, 3.8))
    ax.plot(times, msd_reference, label="reference")
    ax.plot(times, msd_learned, "--", label="learned")
    ax.set_xlabel("t (ps)")
    ax.set_title("mean-squared displacement (Å²)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def md_checks(out: dict, path: str | None = None):
    """The three MD checks of :func:`potentials.md.compare_with_reference` side by side."""
    plt = _plt(path)
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    radial_distribution_plot(out["r"], out["g_reference"], out["g_learned"], ax=ax[0], difference=out["rdf_difference"])
    msd_plot(out["times"], out["msd_reference"], out["msd_learned"], ax=ax[1])
    nve_energy(out["nve"], ax=ax[2])
    return _finish(fig, path)


def predicted_forces(model, frames) -> tuple[np.ndarray, np.ndarray]:
    """Reference forces stored on ASE ``frames`` and ``model``'s forces on the same structures,
    each stacked to (total atoms, 3): the data of a parity plot.

    >>> from ase.build import bulk
    >>> from ase.calculators.emt import EMT
    >>> from potentials.model import ACSFModel
    >>> atoms = bulk("Cu", cubic=True); atoms.rattle(0.05, seed=0); atoms.calc = EMT(); _ = atoms.get_forces()
    >>> ref, pred = predicted_forces(ACSFModel(["Cu"], hidden=(4,)), [atoms])
    >>> ref.shape == pred.shape == (4, 3)
    True
    """
    from .calculator import Calculator

    ref, pred = [], []
    for atoms in frames:
        ref.append(atoms.get_forces())
        a = atoms.copy()
        a.calc = Calculator(model)
        pred.append(a.get_forces())
    return np.concatenate(ref), np.concatenate(pred)
