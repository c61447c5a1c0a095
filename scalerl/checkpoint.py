"""Atomic checkpoints, safe to open, and the global RNG state they carry.

A checkpoint is written to a temporary file in the same folder and renamed over the old one, so a
crash while writing leaves the previous checkpoint intact.

Opening a run directory must not run code from it: checkpoints are loaded with torch's weights-only
unpickler, which builds tensors, containers and numbers, plus the few types allowlisted here (numpy
arrays, dtypes and scalars, the loop's counters). Environments travel inside the checkpoint as pickled
bytes, read by `scalerl.envs.snapshot`, which admits only the named classes and callables a snapshot needs.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import random
import re
import shutil
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalerl.checks import ConfigError, ScalerlWarning, first_line

FORMAT_VERSION = 2


class CheckpointError(ConfigError):
    """A checkpoint is missing, unreadable, or does not belong to this run."""


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def previous_path(path: Path) -> Path:
    return path.with_name("previous" + path.suffix)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temporary_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `path` atomically with a SHA-256 beside it; the checkpoint it replaces is kept as previous.pt,
    for when the new one turns out damaged. A full disk leaves the old files as they were. The temporary
    file's checksum is written only once the file is whole and on disk, so a `.tmp` with its checksum is a
    complete checkpoint: the newest one, if a kill falls between the renames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        with open(temporary, "wb") as handle:
            torch.save({"format": FORMAT_VERSION, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        checksum_path(temporary).write_text(file_digest(temporary) + "\n")
    except (OSError, RuntimeError) as error:
        written = temporary.stat().st_size if temporary.exists() else 0
        temporary.unlink(missing_ok=True)
        checksum_path(temporary).unlink(missing_ok=True)
        # torch's zip writer reports a full disk as "write failed" or "unexpected pos": ask the disk itself
        full = getattr(error, "errno", None) == errno.ENOSPC or "write failed" in str(error) or \
            shutil.disk_usage(path.parent).free <= max(written, 1 << 20)
        reason = "no space left on device" if full else f"{type(error).__name__}: {error}"
        kept = "the previous checkpoint is kept" if path.exists() else "no earlier checkpoint exists"
        raise CheckpointError(f"could not write checkpoint {path} ({reason}); {kept}") from None
    if path.exists():
        os.replace(path, previous_path(path))
        if checksum_path(path).exists():
            os.replace(checksum_path(path), checksum_path(previous_path(path)))
    os.replace(temporary, path)
    os.replace(checksum_path(temporary), checksum_path(path))


def checkpoint_candidates(path: Path) -> list[Path]:
    """The checkpoints of `path` that exist, newest first: a whole `.tmp` (a kill between save_checkpoint's
    renames), `path` itself, then the one before it."""
    temporary = temporary_path(path)
    whole_temporary = [temporary] if temporary.is_file() and checksum_path(temporary).is_file() else []
    return [candidate for candidate in [*whole_temporary, path, previous_path(path)] if candidate.is_file()]


def has_checkpoint(path: Path) -> bool:
    return bool(checkpoint_candidates(path))


def load_checkpoint(path: Path, types: Sequence[type] = ()) -> dict[str, Any]:
    """The newest good checkpoint of `path`, verified against its checksum; where it is not `path` itself (a
    damaged file, or a kill between the renames of a save), a warning says which one the run goes on from.
    `types`: the classes besides numpy's the checkpoint may hold (e.g. the loop's LoopState)."""
    candidates = checkpoint_candidates(path)
    if not candidates:
        raise CheckpointError(f"no checkpoint at {path}")
    problems: list[str] = []
    for candidate in candidates:
        try:
            state = load_verified(candidate, types)
        except CheckpointError as error:
            problems.append(str(error))
            continue
        if candidate != path:
            why = "; ".join(problems) or (f"{path.name} is missing" if not path.is_file() else
                                          f"{candidate.name} is newer than {path.name}")
            which = "the previous checkpoint" if candidate == previous_path(path) else "the whole temporary checkpoint"
            warnings.warn(f"{why}; continuing from {which} {candidate} (step {state.get('step')})", ScalerlWarning,
                          stacklevel=2)
        return state
    raise CheckpointError(problems[0] if len(problems) == 1 else
                          f"no good checkpoint at {path}: " + "; ".join(problems))


def load_verified(path: Path, types: Sequence[type] = ()) -> dict[str, Any]:
    """Verified by its SHA-256 where it has one, else by the CRC-32 the zip format keeps of every record:
    torch itself reads a tensor whose bytes were flipped without a word."""
    expected = checksum_path(path)
    if expected.is_file():
        if expected.read_text().strip() != file_digest(path):
            raise CheckpointError(f"checkpoint {path} is corrupted (its SHA-256 does not match {expected.name})")
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise CheckpointError(f"checkpoint {path} is corrupted or unreadable ({first_line(error)})") from None
        if damaged is not None:
            raise CheckpointError(f"checkpoint {path} is corrupted (the CRC of its record {damaged} does not match)")
    return load_unverified(path, types)


def numpy_core() -> Any:
    return getattr(np, "_core", None) or np.core


def safe_globals(types: Sequence[type] = ()) -> list[Any]:
    """The types a checkpoint may hold besides tensors and containers: numpy's, and the `types` its caller
    hands in (the loop's counters: the caller knows what it saved)."""
    dtypes = [value for value in vars(np.dtypes).values() if isinstance(value, type)]
    return [numpy_core().multiarray._reconstruct, numpy_core().multiarray.scalar, np.ndarray, np.dtype, *dtypes,
            *types]


def load_unverified(path: Path, types: Sequence[type] = ()) -> dict[str, Any]:
    try:
        with torch.serialization.safe_globals(safe_globals(types)):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        message = str(error)
        refused = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)|but got <class '([\w.]+)'>", message)
        if refused:
            raise CheckpointError(f"checkpoint {path} holds something other than weights and training state "
                                  f"({refused.group(1) or refused.group(2)}), so it is not loaded") from None
        detail = message.split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path} is corrupted or unreadable ({detail})") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError, KeyError,
            TypeError, IndexError, AttributeError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupted or unreadable "
                              f"({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} is not a scalerl checkpoint of format {FORMAT_VERSION}")
    return state


def global_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_global_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
