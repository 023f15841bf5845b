"""Progress bars for long jobs: tqdm when it is installed and wanted, otherwise nothing."""

from __future__ import annotations


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, initial: int = 0):
    """A tqdm bar (``update``, ``set_postfix``, ``close``), or a silent stand-in."""
    if not enabled:
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit)
