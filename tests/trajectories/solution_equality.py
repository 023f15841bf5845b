"""Two solutions the same to the bit: every field, every array's dtype, shape, memory order, bits
and writeability, every nested dict, list and object (the interior point's last iterate, scipy's
boundary-value result), apart from fields named in ``skip`` (a fresh solve's ``seconds``)."""

import numpy as np


def assert_same(a, b, path="solution", skip=()):
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"{path}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        if a.dtype.kind == "O":
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
                assert_same(x, y, f"{path}[{i}]")
            return
        assert a.tobytes("A") == b.tobytes("A"), f"{path}: different values"
        assert (a.flags.c_contiguous, a.flags.f_contiguous, a.flags.writeable) == \
            (b.flags.c_contiguous, b.flags.f_contiguous, b.flags.writeable), f"{path}: flags differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for key in a:
            if key not in skip:
                assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, (float, np.floating)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), f"{path}: {a!r} != {b!r}"
    elif hasattr(a, "__dict__") and not callable(a):
        assert_same(vars(a), vars(b), path, skip)
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"
