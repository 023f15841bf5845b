"""Shared fixtures of the potentials tests."""

import pytest

from potentials.reference_data import generate_emt_dataset, load_dataset


@pytest.fixture(scope="session")
def frames(tmp_path_factory):
    """A small EMT copper dataset (32-atom cells: MD at 300 and 900 K, rattled, strained, vacancies)."""
    path = tmp_path_factory.mktemp("cu") / "cu.db"
    generate_emt_dataset(path, "Cu", size=(2, 2, 2), temperatures=(300, 900), md_samples=10, md_interval=5,
                         rattled=6, strained=6, vacancies=4, progress=False)
    return load_dataset(path)
