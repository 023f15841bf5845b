"""Nested containers of arrays ("pytrees"): tuples, lists and dicts, flattened to leaves.

>>> leaves, treedef = flatten({"w": 1.0, "b": (2.0, 3.0)})
>>> leaves
[1.0, 2.0, 3.0]
>>> unflatten(treedef, [4.0, 5.0, 6.0])
{'w': 4.0, 'b': (5.0, 6.0)}
"""

from __future__ import annotations

from typing import Any

_LEAF = None


def flatten(tree: Any) -> tuple[list, Any]:
    """Leaves of ``tree`` in a fixed order, and a description to rebuild it."""
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves):
    if isinstance(tree, (tuple, list)):
        return (type(tree), [_flatten(t, leaves) for t in tree])
    if isinstance(tree, dict):
        return (type(tree), list(tree.keys()), [_flatten(t, leaves) for t in tree.values()])
    if tree is None:
        return ("none",)
    leaves.append(tree)
    return _LEAF


def unflatten(treedef: Any, leaves: list) -> Any:
    """Rebuild the container described by ``treedef`` around ``leaves``."""
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(td, it):
    if td is _LEAF:
        return next(it)
    if td[0] == "none":
        return None
    if len(td) == 3:
        return td[0]({k: _unflatten(s, it) for k, s in zip(td[1], td[2])})
    items = [_unflatten(s, it) for s in td[1]]
    return td[0](items) if td[0] in (list, tuple) else td[0](*items)


def same_structure(a: Any, b: Any) -> bool:
    """Whether two treedefs describe the same nesting, a namedtuple matching any tuple of its
    length (``numpy.linalg.qr``'s QRResult and diffsim's, or a plain ``(dQ, dR)``).

    >>> import numpy as np
    >>> same_structure(flatten(np.linalg.qr(np.eye(2)))[1], flatten((1.0, 2.0))[1])
    True
    >>> same_structure(flatten((1.0, 2.0))[1], flatten([1.0, 2.0])[1])
    False
    """
    if a is _LEAF or b is _LEAF:
        return a is b
    if len(a) != len(b):
        return False
    if len(a) == 1:
        return a == b
    kind_a = tuple if issubclass(a[0], tuple) else a[0]
    kind_b = tuple if issubclass(b[0], tuple) else b[0]
    if kind_a is not kind_b:
        return False
    if len(a) == 3 and list(a[1]) != list(b[1]):
        return False
    children_a, children_b = a[-1], b[-1]
    return len(children_a) == len(children_b) and all(same_structure(x, y) for x, y in zip(children_a, children_b))


def leaf_paths(tree: Any, prefix: str = "") -> list[str]:
    """Readable paths of the leaves, in :func:`flatten` order (``[0]['w']``)."""
    if isinstance(tree, (tuple, list)):
        return [p for i, t in enumerate(tree) for p in leaf_paths(t, f"{prefix}[{i}]")]
    if isinstance(tree, dict):
        return [p for k, t in tree.items() for p in leaf_paths(t, f"{prefix}[{k!r}]")]
    if tree is None:
        return []
    return [prefix]
