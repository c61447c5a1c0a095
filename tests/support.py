"""Helpers the tests share as plain functions (conftest.py hands the same ones out as fixtures)."""

import json
from pathlib import Path

TIMING = {"wall_time", "sps"}
"""Record fields that differ between two runs of the same computation."""


def records(path: Path) -> list[dict]:
    """A run's metrics.jsonl or eval.jsonl records without the timing fields."""
    lines = Path(path).read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]
