"""diffsim's ACSF against TorchANI's AEV (an independent implementation of the same ANI symmetry
functions) with TorchANI's own ANI-1x terms for one element: features and their position
gradients on a rattled, strained periodic copper crystal. Skipped when torchani is absent."""

import os

import numpy as np
import pytest
from ase.build import bulk

import diffsim as ds
import diffsim.numpy as dnp
from potentials.descriptors import ACSFParameters, Descriptor

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
torch = pytest.importorskip("torch")
aev_module = pytest.importorskip("torchani.aev")


@pytest.fixture(scope="module")
def ani1x():
    """TorchANI's ANI-1x AEV for one species in float64, and the same parameters as diffsim's."""
    aev = aev_module.AEVComputer(aev_module.ANIRadial.like_1x(), aev_module.ANIAngular.like_1x(), num_species=1,
                                 neighborlist="cell_list").double()
    r, a = aev.radial, aev.angular
    values = lambda t: tuple(float(x) for x in t.reshape(-1))
    params = ACSFParameters(rc_radial=float(r.cutoff), eta_radial=values(r.eta)[0], shifts_radial=values(r.shifts),
                            rc_angular=float(a.cutoff), eta_angular=values(a.eta)[0], zeta=values(a.zeta)[0],
                            angles=values(a.sections), shifts_angular=values(a.shifts))
    return aev, params


def crystal():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    atoms.set_cell(np.array(atoms.cell) @ np.array([[1.02, 0.01, 0], [0, 0.99, 0], [0, 0, 1.0]]), scale_atoms=True)
    atoms.rattle(0.1, seed=1)
    return atoms


def torchani_in_diffsim_order(A, params):
    """TorchANI's AEV columns as diffsim's: radial terms carry TorchANI's 1/4, and its angular
    block runs radial shift major (diffsim's: angle section major)."""
    n_rad, n_th, n_ra = len(params.shifts_radial), len(params.angles), len(params.shifts_angular)
    angular = A[:, n_rad:].reshape(-1, n_ra, n_th).transpose(0, 2, 1).reshape(-1, n_th * n_ra)
    return np.concatenate([4.0 * A[:, :n_rad], angular], axis=1)


def test_ani1x_terms_are_the_published_ones(ani1x):
    # Smith, Isayev, Roitberg 2017 (ANI-1): R_c 5.2 / 3.5 Å, η 16 / 8, ζ 32, 16 radial shifts from
    # 0.9 Å by 0.26875, angle sections (k + ½) π/8, angular shifts 0.9 ... 2.85 Å
    _, p = ani1x
    assert (p.rc_radial, p.rc_angular, p.eta_radial, p.eta_angular, p.zeta) == (5.2, 3.5, 16.0, 8.0, 32.0)
    np.testing.assert_allclose(p.shifts_radial, 0.9 + 0.26875 * np.arange(16), rtol=1e-6)
    np.testing.assert_allclose(p.angles, (np.arange(8) + 0.5) * np.pi / 8, rtol=1e-6)
    np.testing.assert_allclose(p.shifts_angular, [0.9, 1.55, 2.2, 2.85], rtol=1e-6)


def test_features_equal_torchani_aev(ani1x):
    aev, params = ani1x
    atoms = crystal()
    G = np.asarray(Descriptor(["Cu"], params)(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers))
    species = torch.zeros((1, len(atoms)), dtype=torch.long)
    A = aev(species, torch.tensor(atoms.positions[None]), torch.tensor(np.array(atoms.cell)),
            torch.tensor([True] * 3))[0].numpy()
    A = torchani_in_diffsim_order(A, params)
    assert G.shape == A.shape == (len(atoms), 48)
    assert np.abs(G).max() > 0.1 and np.count_nonzero(G[:, 16:] > 1e-6) > 0  # angular terms are in play
    np.testing.assert_allclose(G, A, rtol=1e-10, atol=1e-12 * np.abs(G).max())


def test_feature_gradients_equal_torchani(ani1x):
    """d(Σ W ⊙ G)/dR by diffsim's reverse mode against torch.autograd through TorchANI."""
    aev, params = ani1x
    atoms = crystal()
    W = np.random.default_rng(0).standard_normal((len(atoms), 48))
    desc = Descriptor(["Cu"], params)
    cell = np.array(atoms.cell)
    g = np.asarray(ds.grad(lambda R: dnp.sum(desc(R, cell, atoms.pbc, atoms.numbers) * W))(atoms.positions))
    x = torch.tensor(atoms.positions[None], requires_grad=True)
    A = aev(torch.zeros((1, len(atoms)), dtype=torch.long), x, torch.tensor(cell), torch.tensor([True] * 3))[0]
    n_rad, n_th, n_ra = 16, 8, 4
    Wt = np.concatenate([W[:, :n_rad] * 4.0,
                         W[:, n_rad:].reshape(-1, n_th, n_ra).transpose(0, 2, 1).reshape(-1, n_th * n_ra)], axis=1)
    (gt,) = torch.autograd.grad((A * torch.tensor(Wt)).sum(), x)
    np.testing.assert_allclose(g, gt[0].numpy(), rtol=1e-9, atol=1e-10 * np.abs(g).max())
