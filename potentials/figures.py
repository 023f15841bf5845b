"""Figures for potentials: the learning curve and the force parity plot."""

from __future__ import annotations

import numpy as np


def _plt(path):
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


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
        fig.savefig(path, dpi=110)
    return fig


def force_parity(reference: np.ndarray, predicted: np.ndarray, path: str | None = None, title: str = ""):
    """Predicted against reference force components (eV/Å), with the MAE."""
    plt = _plt(path)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ref, pred = np.ravel(reference), np.ravel(predicted)
    lim = float(np.max(np.abs(ref))) * 1.05
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=1)
    ax.scatter(ref, pred, s=3, alpha=0.4)
    ax.set_xlabel("reference force (eV/Å)")
    ax.set_ylabel("predicted force (eV/Å)")
    ax.set_title(f"{title} MAE {1000 * np.mean(np.abs(ref - pred)):.1f} meV/Å")
    ax.set_aspect("equal")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig
