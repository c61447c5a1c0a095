"""Which code made a result: scalerl's version, the commit of the checkout it ran from, and the versions of
the libraries that decide its numbers. Every run folder keeps this in provenance.json, and every shipped
study result carries it, so a number can be traced to the code that made it and made again."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

VERSION = "0.1.0"
"""scalerl's version (`scalerl.__version__`); pyproject.toml reads the same number."""
PACKAGE = Path(__file__).resolve().parent


@functools.cache
def source_commit() -> str:
    """The git commit scalerl runs from, with `+changes` when tracked files under scalerl/ differ from it;
    `unknown` outside a git checkout (an installed wheel)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PACKAGE), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", str(PACKAGE))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if changed else "")


def provenance() -> dict[str, Any]:
    import numpy
    import torch

    return {"scalerl": VERSION, "commit": source_commit(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__}
