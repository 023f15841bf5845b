"""The shared vocabulary of results: both applications return dataclasses whose common fields
carry the same names, ``cost``, ``costates``, ``seconds``, ``status`` and ``message`` (where a
result has them), and plot through a ``plot(path)`` method.

:class:`ReadsLikeADict` lets code written when a result was a plain dict keep reading it
(``result["drift"]``, ``"r" in result``): a field set to None counts as absent, as a key that
was never written.

>>> from dataclasses import dataclass
>>> @dataclass
... class Fit(ReadsLikeADict):
...     cost: float
...     seconds: float | None = None
>>> fit = Fit(cost=1.5)
>>> fit["cost"], "seconds" in fit, sorted(fit.keys())
(1.5, False, ['cost'])
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

SHARED_FIELDS = ("cost", "costates", "seconds", "status", "message")


class ReadsLikeADict:
    """Read-only dict access to the fields of a dataclass (fields set to None are absent)."""

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys()]
