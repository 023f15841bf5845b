"""Progress bars for long jobs, one convention for every package: a tqdm bar on stderr when it is
wanted (``enabled``), stderr is a terminal and tqdm is installed; otherwise a silent stand-in
with the same methods, so the code that reports progress never asks which it has.

>>> bar = progress_bar(3, "demo", "step", enabled=False)
>>> bar.update(); bar.set_postfix(loss="0.1"); bar.close()
"""

from __future__ import annotations

import sys


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def write(self, text: str, file=None) -> None:
        print(text, file=file or sys.stderr)


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, initial: int = 0):
    """A tqdm bar (``update``, ``set_postfix``, ``write(text, file=sys.stderr)`` a line above it,
    ``close``), or a silent stand-in when not ``enabled``, when stderr is not a terminal (a log
    file, a pipe; a notebook still shows it) or without tqdm; its ``write`` still prints."""
    if not enabled:
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent()
    bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=None)  # None: off unless a terminal
    if bar.disable:  # not a terminal: no bar, but the lines written still reach stderr
        bar.close()
        return _Silent()
    return bar
