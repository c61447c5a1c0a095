"""Progress bars for the commands that run for minutes: a rate and the time left, on standard error.

Shown when standard error is a terminal (so logs and pipes stay clean); SCALERL_PROGRESS=on shows them
everywhere and SCALERL_PROGRESS=off nowhere. Training runs pass their `--progress auto|on|off` instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def shown(setting: str | None = None) -> bool:
    """Whether to draw bars: `setting` (auto, on, off), by default SCALERL_PROGRESS, else auto."""
    setting = (setting or os.environ.get("SCALERL_PROGRESS", "auto")).lower()
    return setting == "on" or (setting != "off" and sys.stderr.isatty())


def progress(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, setting: str | None = None) -> tqdm:
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=not shown(setting),
                dynamic_ncols=True)
