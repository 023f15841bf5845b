"""Fixtures of the fault-injection suite: a kernel cache per test, small files to break. (This
folder is a package so that its conftest does not clash with tests/potentials' one.)"""

import pathlib

import pytest


@pytest.fixture
def cache(tmp_path) -> pathlib.Path:
    """A kernel cache of this test's own (DIFFSIM_CACHE_DIR for children)."""
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> pathlib.Path:
    """20 EMT-labelled 4-atom Cu cells in an ase.db."""
    from potentials.reference_data import generate_emt_dataset

    path = tmp_path_factory.mktemp("data") / "cu.db"
    generate_emt_dataset(path, "Cu", size=(1, 1, 1), temperatures=(500.0,), md_samples=8, md_interval=3, rattled=4,
                         strained=4, vacancies=4, eos=0, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> pathlib.Path:
    """An (untrained) one-element ACSF model file."""
    from potentials.model import ACSFModel

    path = tmp_path_factory.mktemp("model") / "cu.npz"
    ACSFModel(["Cu"], hidden=(4,), seed=0).save(path)
    return path
