"""diffsim.packing: arrays of a dict pickled as one buffer come back with the same bits, dtype,
shape, memory order and writeability, each its own stretch of memory."""

import pickle

import numpy as np
import pytest

from diffsim.packing import pack, unpack


def _trip(values):
    return unpack(pickle.loads(pickle.dumps(pack(values), protocol=pickle.HIGHEST_PROTOCOL)))


def _same_array(a, b):
    assert type(b) is np.ndarray and b.dtype == a.dtype and b.shape == a.shape
    assert b.tobytes("A") == a.tobytes("A")  # the bits, in the array's own memory order
    assert (b.flags.c_contiguous, b.flags.f_contiguous) == (a.flags.c_contiguous, a.flags.f_contiguous)


def test_every_numeric_kind_and_layout_comes_back_bit_for_bit():
    rng = np.random.default_rng(3)
    values = {"c": rng.standard_normal((4, 3)), "f": np.asfortranarray(rng.standard_normal((3, 5))),
              "nan": np.array([np.nan, -0.0, np.inf, 5e-324]), "scalar": np.array(2.5),
              "empty": np.zeros((0, 4)), "ints": rng.integers(-9, 9, (2, 3)).astype(np.int32),
              "bools": rng.random(7) > 0.5, "complex": rng.standard_normal(3) + 1j * rng.standard_normal(3),
              "odd": np.arange(3, dtype=np.uint8), "after_odd": rng.standard_normal(5),
              "nested": {"lam": rng.standard_normal((2, 2)), "deeper": {"z": np.ones(1)}, "tag": "x"},
              "name": "run", "n": 3, "x": 1.5, "none": None, "list": [np.ones(2), 1]}
    back = _trip(values)
    assert list(back) == list(values) and list(back["nested"]) == list(values["nested"])
    for key in ("c", "f", "nan", "scalar", "empty", "ints", "bools", "complex", "odd", "after_odd"):
        _same_array(values[key], back[key])
        assert back[key].flags.writeable and back[key].flags.aligned
    _same_array(values["nested"]["lam"], back["nested"]["lam"])
    _same_array(values["nested"]["deeper"]["z"], back["nested"]["deeper"]["z"])
    assert (back["name"], back["n"], back["x"], back["none"], back["nested"]["tag"]) == ("run", 3, 1.5, None, "x")
    np.testing.assert_array_equal(back["list"][0], values["list"][0])
    back["c"][...] = 7.0  # each array its own memory: writing one leaves the others alone
    _same_array(values["after_odd"], back["after_odd"])
    _same_array(values["f"], back["f"])


def test_what_it_cannot_carry_travels_as_usual():
    base = np.arange(12.0).reshape(3, 4)
    readonly = np.arange(3.0)
    readonly.flags.writeable = False
    values = {"strided": base[:, ::2], "readonly": readonly, "objects": np.array([{"a": 1}, None]),
              "record": np.zeros(2, dtype=[("a", "<f8"), ("b", "<i4")]), "matrix": np.ma.masked_array([1.0, 2.0])}
    skeleton, layout, buffer = pack(values)
    assert layout == () and len(buffer) == 0  # none of them in the buffer
    back = _trip(values)
    np.testing.assert_array_equal(back["strided"], values["strided"])
    assert not back["readonly"].flags.writeable
    assert back["objects"][0] == {"a": 1} and back["record"].dtype == values["record"].dtype
    assert type(back["matrix"]) is np.ma.MaskedArray


def test_a_buffer_that_arrives_read_only_is_copied_once_into_writeable_memory():
    skeleton, layout, buffer = pack({"a": np.arange(4.0)})
    back = unpack((skeleton, layout, bytes(buffer)))
    back["a"][0] = -1.0
    np.testing.assert_array_equal(back["a"], [-1.0, 1.0, 2.0, 3.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int8, np.bool_])
def test_alignment_of_each_array_whatever_came_before(dtype):
    values = {f"a{i}": np.ones(i + 1, dtype=np.int8) for i in range(5)} | {"last": np.ones(3, dtype=dtype)}
    _, layout, _ = pack(values)
    assert all(offset % 16 == 0 for *_, offset in layout)
    assert _trip(values)["last"].dtype == dtype
