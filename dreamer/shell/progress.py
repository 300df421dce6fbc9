"""A progress bar for long runs: env steps, last return and ETA (tqdm)."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    """Thin wrapper so the loops never talk to tqdm directly (and tests can turn it off)."""

    def __init__(self, total: int, initial: int = 0, *, enabled: bool = True, desc: str = ""):
        self._bar = tqdm(
            total=total,
            initial=initial,
            unit="step",
            desc=desc,
            dynamic_ncols=True,
            disable=not enabled or not sys.stderr.isatty(),
            smoothing=0.05,
        )

    def update(self, steps: int, **stats: float | None) -> None:
        self._bar.update(steps)
        shown = {k: f"{v:.1f}" for k, v in stats.items() if v is not None}
        if shown:
            self._bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        self._bar.close()
