"""Shared fixtures of the potentials tests."""

import pytest
from ase.build import bulk, molecule

from potentials.model import ACSFModel
from potentials.painn import PaiNNModel
from potentials.reference_data import generate_emt_dataset, load_dataset


@pytest.fixture(scope="session")
def frames(tmp_path_factory):
    """A small EMT copper dataset (32-atom cells: MD at 300 and 900 K, rattled, strained, vacancies)."""
    path = tmp_path_factory.mktemp("cu") / "cu.db"
    generate_emt_dataset(path, "Cu", size=(2, 2, 2), temperatures=(300, 900), md_samples=10, md_interval=5,
                         rattled=6, strained=6, vacancies=4, eos=0, progress=False)
    return load_dataset(path)


def _crystal(rattle=0.08, seed=0):
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 2))
    atoms.symbols[[1, 5, 9]] = "Au"
    atoms.rattle(rattle, seed=seed)
    return atoms


def _cluster():
    atoms = molecule("CH4")
    atoms.set_chemical_symbols(["Au"] + ["Cu"] * 4)
    atoms.positions *= 2.2
    return atoms


@pytest.fixture(scope="session")
def crystal():
    """A maker of a rattled 32-atom fcc Cu cell with 3 Au atoms: ``crystal(rattle=0.08, seed=0)``."""
    return _crystal


@pytest.fixture(scope="session")
def cluster():
    """A maker of a 5-atom Cu4Au cluster, no cell."""
    return _cluster


@pytest.fixture(scope="session")
def small_painn():
    """A small untrained Cu/Au PaiNN with nonzero references and energy scale."""
    m = PaiNNModel(["Cu", "Au"], features=8, layers=2, n_rbf=6, cutoff=4.5, seed=1)
    m.reference, m.energy_scale = {"Cu": -3.0, "Au": -3.5}, 0.7
    return m


@pytest.fixture(scope="session")
def acsf_model():
    """A small untrained Cu/Au ACSF model with nonzero references."""
    m = ACSFModel(["Cu", "Au"], hidden=(10, 10), seed=1)
    m.reference = {"Cu": -3.0, "Au": -3.5}
    return m


@pytest.fixture(params=["acsf_model", "small_painn"])
def model(request):
    """Each kind of model in turn (tests of the shared interface run for both)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def dask_client():
    """A real Dask LocalCluster of two worker processes (diffsim.cluster's default kind)."""
    from diffsim import cluster as dask_cluster

    with dask_cluster.client(workers=2) as c:
        yield c
