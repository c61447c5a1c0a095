"""The Ray side of sweeps: starting a local Ray (retried on a busy machine) or joining a cluster (bounded
handshakes, loopback only when local, one-line errors for every way joining fails), and checking that every
node sees the sweep folder. `scalerl.sweep` holds the sweep spec and drives the trials over what this sets up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scalerl.checks import ConfigError, first_line, install_hint

_ray_address: str | None = None
"""The cluster address this process joined (None: a local Ray), so a later sweep elsewhere reconnects."""


LOCAL_START_ATTEMPTS = 3
"""Tries at starting a local Ray: on a loaded machine its processes can miss their start-up deadline."""


def start_ray(address: str | None, workers: int | None) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"sweeps run on Ray: {install_hint('sweep')}") from None
    global _ray_address
    if ray.is_initialized():
        if _ray_address == address:
            return
        ray.shutdown()  # this process was on another Ray (a local one, or another cluster)
    if address:
        join_cluster(ray, address)
    else:
        for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
            with loopback_only(ray):  # a Ray of its own (never one already running here), off the network
                try:
                    ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False,
                             log_to_driver=False, object_store_memory=200 * 1024**2, logging_level=logging.WARNING)
                    break
                except Exception as error:  # Ray raises bare Exceptions for a start that times out or fails
                    with contextlib.suppress(Exception):
                        ray.shutdown()
                    if attempt == LOCAL_START_ATTEMPTS:
                        raise ConfigError(f"could not start a local Ray for the sweep ({first_line(error)}) in "
                                          f"{attempt} tries; runs already finished are kept: run the same command "
                                          "again to go on") from None
                    print(f"scalerl: the local Ray did not start ({first_line(error)}); a busy machine is slow "
                          f"to start one: trying again ({attempt + 1} of {LOCAL_START_ATTEMPTS})", file=sys.stderr)
                    time.sleep(5.0 * attempt)
    _ray_address = address


SINGLE_NODE_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def loopback_only(ray: Any) -> Iterator[None]:
    """Start Ray on 127.0.0.1. On Linux, Ray puts even a one-machine instance on the machine's network
    address, listening on every interface; on Windows and macOS it keeps to loopback, and the switch Ray reads
    for that (its environment variable, and the constant it was read into at import) asks for the same here.
    Only the start needs it: Ray's processes are started inside, and keep the address they were given."""
    constants = ray._private.ray_constants
    saved_env, saved_flag = os.environ.get(SINGLE_NODE_SWITCH), constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_NODE_SWITCH], constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(SINGLE_NODE_SWITCH)
        else:
            os.environ[SINGLE_NODE_SWITCH] = saved_env


def join_cluster(ray: Any, address: str) -> None:
    """ray.init on a cluster, with one-line errors for the usual mistakes. A GCS address (host:port) is
    tried over TCP first: Ray itself retries a dead address for minutes."""
    if address != "auto" and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--address {address!r} is not host:port (the head's GCS address, e.g. 10.0.0.5:6379), "
                              "auto, or ray://host:10001")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ConfigError(f"no Ray cluster answers at {address} ({reason}); `ray status` on the head node "
                              "prints its address") from None
    failure = None
    with tempfile.TemporaryFile() as said, stderr_to(said):
        try:
            refusal = handshake_refusal(ray, address)
            if refusal is None:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                failure = f"cannot join the Ray cluster at {address}: "
        except ray.exceptions.AuthenticationError:
            failure = (f"the Ray cluster at {address} wants a token and none was found here: copy the head's "
                       "~/.ray/auth_token to this machine, or set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH)")
        except ConnectionError:
            failure = f"cannot join the Ray cluster at {address}: "
        said.seek(0)
        ray_output = said.read().decode(errors="replace") + (refusal or "")
    if failure is None:
        sys.stderr.write(ray_output)
        return
    if failure.endswith(": "):
        if "InvalidAuthToken" in ray_output and has_ray_token():
            failure += "it refused this machine's token, which is not the head's (~/.ray/auth_token, RAY_AUTH_TOKEN)"
        elif "InvalidAuthToken" in ray_output:
            failure += ("it wants a token and none was sent: set RAY_AUTH_MODE=token and give it the head's token "
                        "(copy ~/.ray/auth_token from the head, or set RAY_AUTH_TOKEN)")
        else:
            failure += "something listens there but does not answer as a Ray head of this Ray version"
    raise ConfigError(failure)


HANDSHAKE_SECONDS = 30
"""How long a Ray head may take to answer a first handshake (a live one answers in milliseconds)."""


def handshake_refusal(ray: Any, address: str) -> str | None:
    """Why the head at a host:port address refuses the token this process sends (or its lack of one), asked
    in one handshake (None: not refused): ray.init retries a refused token for 20 seconds before it gives up.
    Ray itself names a missing token when RAY_AUTH_MODE=token (and aborts the process if a handshake is tried
    then)."""
    if address == "auto" or address.startswith("ray://") or (
            os.environ.get("RAY_AUTH_MODE") == "token" and not has_ray_token()):
        return None
    try:
        from ray._raylet import GcsClient
    except ImportError:  # another Ray layout: ray.init finds out, slowly
        return None
    answers: list[str | None] = []

    def handshake() -> None:
        try:
            GcsClient(address=address)
            answers.append(None)
        except ray.exceptions.AuthenticationError as error:
            answers.append(str(error))
        except Exception:  # anything else is ray.init's to report
            answers.append(None)

    # A server that is not a Ray head (a wrong port) holds the handshake, and ray.init after it, forever.
    thread = threading.Thread(target=handshake, daemon=True)
    thread.start()
    thread.join(HANDSHAKE_SECONDS)
    if not answers:
        raise ConfigError(f"cannot join the Ray cluster at {address}: something listens there but does not answer as "
                          f"a Ray head within {HANDSHAKE_SECONDS} s; `ray status` on the head node prints its address")
    return answers[0]


@contextlib.contextmanager
def stderr_to(file: Any) -> Iterator[None]:
    """Send file descriptor 2 to `file`: Ray's core writes there directly, a line per failed attempt to join,
    and a failure is better said once."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def has_ray_token() -> bool:
    """Whether this process would send Ray a token: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path or Path.home() / ".ray" / "auth_token").is_file()


def trial_nodes(ray: Any, gpus_per_run: float) -> list[dict[str, Any]]:
    """The live nodes a trial can be placed on (a CPU, and a GPU share where asked)."""
    nodes = [node for node in ray.nodes() if node["Alive"] and node["Resources"].get("CPU", 0) >= 1
             and node["Resources"].get("GPU", 0) >= gpus_per_run]
    if not nodes:
        needs = f"a CPU and {gpus_per_run:g} GPU" if gpus_per_run else "a CPU"
        raise ConfigError(f"no node of the Ray cluster has {needs} for a trial")
    return nodes


def read_probe(path: str) -> str | None:
    """On a node: the probe file's text, or None where the node cannot see it."""
    try:
        return Path(path).read_text()
    except OSError:
        return None


PROBE_SECONDS = 120.0
"""How long every node has to answer whether it sees the sweep folder."""


def check_shared_folder(ray: Any, sweep_dir: Path, nodes: list[dict[str, Any]]) -> None:
    """Every node that may run a trial must see the sweep folder at the same path, or its trials would
    write run directories the driver never finds. Checked by reading, on each node, a file written here."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = sweep_dir / f".probe-{secrets.token_hex(4)}"
    token = secrets.token_hex(16)
    probe.write_text(token)
    try:
        read = ray.remote(read_probe)
        pending = [read.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            node["NodeID"], soft=False)).remote(str(probe.resolve())) for node in nodes]
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=PROBE_SECONDS)
        if len(ready) < len(pending):
            silent = [f"{node['NodeManagerAddress']} node {node['NodeID'][:8]}" for node, ref in zip(nodes, pending)
                      if ref not in ready]
            for ref in pending:
                ray.cancel(ref, force=True)
            raise ConfigError(f"checking that every node sees the sweep folder timed out after {PROBE_SECONDS:.0f} s: "
                              f"{len(silent)} of {len(nodes)} nodes did not answer ({', '.join(silent[:4])}); "
                              "check that they are alive and not overloaded (ray status), then run again")
        answers = ray.get(pending)
    finally:
        probe.unlink(missing_ok=True)
    blind = nodes_not_seeing(nodes, answers, token)
    if blind:
        raise ConfigError(f"{len(blind)} of {len(nodes)} nodes cannot see the sweep folder {sweep_dir.resolve()} "
                          f"({', '.join(blind)}): put it on a filesystem every node mounts at the same path")


def nodes_not_seeing(nodes: list[dict[str, Any]], answers: list[str | None], token: str) -> list[str]:
    return [f"{node['NodeManagerAddress']} node {node['NodeID'][:8]}" for node, answer in zip(nodes, answers)
            if answer != token]
