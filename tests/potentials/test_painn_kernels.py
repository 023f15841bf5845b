"""PaiNN's fused radial kernels (potentials/painn_kernels.py) against independent references: the
plain numpy formulation of the radial filters and of the whole PaiNN energy written out here,
finite differences of the basis, of the energy (forces, stress, Hessian) and of the training loss."""

import math

import numpy as np
import pytest

import diffsim as ds
from potentials.painn import PaiNNModel
from potentials.painn_kernels import radial_apply, radial_basis, radial_contract, radial_weights
from potentials.training import TrainConfig, _batch, batch_loss, prepare

CUTOFF, M = 4.5, 6


def numpy_basis(r, cutoff=CUTOFF, m=M):
    """(pairs, m + 1): f_c, then f_c sin(nπr/r_c)/r, written with numpy as the model was before."""
    n = np.arange(1, m + 1)
    fc = np.where(r < cutoff, 0.5 * np.cos(np.pi * r / cutoff) + 0.5, 0.0)
    return np.concatenate([fc[:, None], np.sin(r[:, None] * (n * np.pi / cutoff)) / r[:, None] * fc[:, None]], axis=1)


@pytest.fixture
def pairs():
    rng = np.random.default_rng(0)
    r = np.concatenate([rng.uniform(0.8, 4.4, 40), [CUTOFF, 4.6]])  # two at or past the cutoff: zero filters
    return r, rng.standard_normal((M + 1, 5)), rng.standard_normal(len(r)), rng.standard_normal((len(r), 5))


def test_filters_match_the_numpy_formulation(pairs):
    r, K, c, g = pairs
    B = numpy_basis(r)
    basis = radial_basis(r, CUTOFF)
    np.testing.assert_allclose(radial_apply(c, r, K, d=0, basis=basis), c[:, None] * (B @ K), rtol=0, atol=1e-13)
    np.testing.assert_allclose(radial_contract(g, r, K, d=0, basis=basis), np.sum(g * (B @ K), axis=1), rtol=0,
                               atol=1e-13)
    np.testing.assert_allclose(radial_weights(c, g, r, m=M, d=0, basis=basis), B.T @ (c[:, None] * g), rtol=0,
                               atol=1e-12)
    assert np.all(radial_apply(c, r, K, d=1, basis=basis)[-2:] == 0.0)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_derivative_tables_match_finite_differences_of_the_numpy_basis(pairs, d):
    r = pairs[0][:-2]
    h = 1e-3
    # d-th central difference of the numpy basis (stencil of d + 1 points at half steps, order h²)
    fd = sum((-1) ** k * math.comb(d, k) * numpy_basis(r + (d / 2 - k) * h) for k in range(d + 1)) / h ** d
    table = radial_basis(r, CUTOFF).table(d, M)
    np.testing.assert_allclose(table, fd, rtol=0, atol=1e-5 * max(1.0, np.abs(fd).max()))


def test_the_three_primitives_have_the_gradients_of_finite_differences(pairs):
    r, K, c, g = pairs
    r = r[:-2] + 0.0
    K, c, g = K[:, :3], c[:-2], g[:-2, :3]
    # every argument, reverse over reverse (the order force training needs) and forward
    cases = [(lambda c, r, K: radial_apply(c, r, K, d=0, basis=radial_basis(r, CUTOFF)), (c, r, K)),
             (lambda g, r, K: radial_contract(g, r, K, d=0, basis=radial_basis(r, CUTOFF)), (g, r, K)),
             (lambda c, g, r: radial_weights(c, g, r, m=M, d=0, basis=radial_basis(r, CUTOFF)), (c, g, r))]
    for f, args in cases:
        ds.check_grads(f, args, order=2, modes=("rev", "fwd"), rtol=1e-5, eps=1e-6)


# ---------------------------------------------------------------- the whole model


def silu(x):
    return x / (1.0 + np.exp(-x))


def numpy_painn_energies(model, positions, cell, pbc, numbers):
    """Per-atom energies of ``model`` by the paper's equations in plain numpy (np.add.at for the sums
    over neighbours, the basis and filters as numpy products): the formulation before the kernels."""
    top = model.topology(positions, cell, pbc, numbers)
    i, j, N, F = top["centers"], top["neighbors"], len(positions), model.features
    D = positions[j] - positions[i] + top["shifts"] @ cell
    r = np.linalg.norm(D, axis=1)
    unit = D / r[:, None]
    B = numpy_basis(r, model.cutoff, model.n_rbf)
    w = model.weights
    s = w["embedding"][top["species"]]
    v = np.zeros((N, 3, F))
    for block in w["interactions"]:
        (W1, b1), (W2, b2) = block["phi"]
        Wr, br = block["radial"]
        phi = silu(s @ W1 + b1) @ W2 + b2
        filt = B[:, 1:] @ Wr + B[:, :1] * br  # f_c (rbf W_r + b_r)
        pa, pb, pc = phi[:, :F], phi[:, F:2 * F], phi[:, 2 * F:]
        wa, wb, wc = filt[:, :F], filt[:, F:2 * F], filt[:, 2 * F:]
        dsum = np.zeros((N, F))
        np.add.at(dsum, i, pa[j] * wa)
        dvec = np.zeros((N, 3, F))
        np.add.at(dvec, i, v[j] * (pb[j] * wb)[:, None, :] + unit[:, :, None] * (pc[j] * wc)[:, None, :])
        s, v = s + dsum, v + dvec
        Uv, Vv = v @ block["U"], v @ block["V"]
        norm = np.sqrt(np.sum(Vv * Vv, axis=1) + 1e-8)
        (P1, c1), (P2, c2) = block["psi"]
        y = silu(np.concatenate([s, norm], axis=1) @ P1 + c1) @ P2 + c2
        a_vv, a_sv, a_ss = y[:, :F], y[:, F:2 * F], y[:, 2 * F:]
        v = v + a_vv[:, None, :] * Uv
        s = s + a_sv * np.sum(Uv * Vv, axis=1) + a_ss
    (R1, d1), (R2, d2) = w["readout"]
    return model.energy_scale * (silu(s @ R1 + d1) @ R2 + d2)[:, 0] + model.reference_energies(numbers)


@pytest.fixture
def busy_model(small_painn):
    """small_painn with every weight (biases too) moved off its initial value."""
    from diffsim.tree import flatten, unflatten

    m = PaiNNModel(["Cu", "Au"], features=8, layers=2, n_rbf=M, cutoff=CUTOFF, seed=1)
    m.reference, m.energy_scale = dict(small_painn.reference), small_painn.energy_scale
    leaves, tree = flatten(m.weights)
    rng = np.random.default_rng(5)
    m.weights = unflatten(tree, [x + 0.1 * rng.standard_normal(np.shape(x)) for x in leaves])
    return m


def test_per_atom_energies_match_the_numpy_formulation(busy_model, crystal, cluster):
    for atoms in (crystal(), cluster()):
        args = (atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers)
        np.testing.assert_allclose(busy_model.per_atom_energies(*args), numpy_painn_energies(busy_model, *args),
                                   rtol=0, atol=1e-12)


def test_forces_and_stress_are_finite_differences_of_the_energy(busy_model, crystal):
    atoms = crystal()
    pos, cell = atoms.positions, np.array(atoms.cell)

    def energy(p, c):
        return busy_model.energy_forces(p, c, atoms.pbc, atoms.numbers)[0]

    _, F, S = busy_model.energy_forces(pos, cell, atoms.pbc, atoms.numbers, stress=True)
    h = 1e-5
    for a, x in [(0, 0), (3, 1), (7, 2), (20, 0)]:
        e = np.zeros_like(pos)
        e[a, x] = h
        assert abs(-(energy(pos + e, cell) - energy(pos - e, cell)) / (2 * h) - F[a, x]) < 1e-7
    volume = abs(np.linalg.det(cell))
    for x, y in [(0, 0), (1, 1), (0, 1), (1, 2)]:
        eps = np.zeros((3, 3))
        eps[x, y] = eps[y, x] = h / (1 + (x != y))
        up, down = np.eye(3) + eps, np.eye(3) - eps
        fd = (energy(pos @ up, cell @ up) - energy(pos @ down, cell @ down)) / (2 * h) / volume
        assert abs(fd - S[x, y]) < 1e-8


def test_hessian_in_positions_is_the_finite_difference_of_the_forces(busy_model, cluster):
    atoms = cluster()
    atoms.rattle(0.1, seed=3)  # off the symmetric shape, where the vector features vanish and ‖Vv‖ bends sharply
    pos, cell = atoms.positions, np.array(atoms.cell)
    top = busy_model.topology(pos, cell, atoms.pbc, atoms.numbers)
    H = ds.hessian(lambda R: busy_model.energy(busy_model.weights, R, cell, atoms.pbc, atoms.numbers, top))(pos)
    h = 1e-5
    for a, x in [(0, 0), (2, 1), (4, 2)]:
        e = np.zeros_like(pos)
        e[a, x] = h
        fd = -(busy_model.energy_forces(pos + e, cell, atoms.pbc, atoms.numbers, top)[1]
               - busy_model.energy_forces(pos - e, cell, atoms.pbc, atoms.numbers, top)[1]) / (2 * h)
        np.testing.assert_allclose(H[a, x], fd, rtol=0, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_training_gradient_with_stress_is_the_finite_difference_of_the_loss(busy_model, frames):
    data = prepare(busy_model, frames[:2])
    batch = _batch(data)
    config = TrainConfig(energy_weight=10.0, force_weight=5.0, stress_weight=100.0)
    w = busy_model.weights
    grad = ds.grad(lambda w: batch_loss(busy_model, w, batch, config))(w)
    h = 1e-6
    # the radial weights and bias of both layers (through the kernels), and a weight before them
    for path in [("interactions", 0, "radial", 0), ("interactions", 1, "radial", 1), ("interactions", 0, "phi", 1, 0)]:
        def at(tree, _p=path):
            for k in _p:
                tree = tree[k]
            return tree
        target = at(w)
        for idx in [(0, 0), (-1, -1)] if target.ndim == 2 else [(0,), (-1,)]:
            old = target[idx]
            target[idx] = old + h
            up = float(batch_loss(busy_model, w, batch, config))
            target[idx] = old - h
            down = float(batch_loss(busy_model, w, batch, config))
            target[idx] = old
            fd = (up - down) / (2 * h)
            assert abs(at(grad)[idx] - fd) < 1e-5 * max(1.0, abs(fd)), (path, idx)


def test_bad_arguments_are_named():
    r = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="radial_apply: c"):
        radial_apply(np.ones(3), r, np.ones((3, 2)), d=0, basis=radial_basis(r, CUTOFF))
    with pytest.raises(ValueError, match="make it with radial_basis"):
        radial_contract(np.ones((2, 2)), r, np.ones((3, 2)), d=0, basis=radial_basis(np.ones(5), CUTOFF))
