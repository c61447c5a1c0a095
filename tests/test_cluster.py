"""Sweeps on a Ray cluster of several nodes on this machine, joined by address as a user would: trials spread
over the nodes, a worker node killed mid-sweep has its trials finished elsewhere from their checkpoints, the
results match a local Ray's, and every socket stays on 127.0.0.1. Bad addresses and missing tokens get one-line
errors."""

import ipaddress
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from scalerl.cli import main
from scalerl.cluster import nodes_not_seeing

# Under pytest-xdist every test that starts Ray runs on one worker, one after another
# (pyproject.toml: -n 2 --dist loadgroup).
pytestmark = pytest.mark.xdist_group("ray")

pytest.importorskip("ray", reason="pip install 'scalerl[sweep]'")

HELPER = Path(__file__).with_name("ray_cluster.py")
SWEEP = ["--set", "env=classic:CartPole-v1", "steps=2000", "eval_every=1000", "eval_episodes=2", "checkpoint_every=500",
         "log_every=500", "algo.learning_starts=200", "--grid", "net.hidden=16,32", "--seeds", "0", "1", "--no-report"]


def scalerl(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scalerl", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def said(stderr: str) -> str:
    """scalerl's own line of stderr: on a loaded machine Ray's C++ core writes log lines there too, which are
    not ours to silence."""
    ours = [line for line in stderr.splitlines() if line.startswith("scalerl:")]
    assert len(ours) == 1, stderr[-2000:]
    return ours[0]


@pytest.fixture(scope="module")
def cluster():
    """A head and two worker nodes on loopback, with token authentication, and the environment a driver on
    this machine needs: the token, and Ray told not to swap 127.0.0.1 for the machine's network address."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen([sys.executable, str(HELPER), "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=env)
    info = json.loads(process.stdout.readline())
    yield SimpleNamespace(process=process, env=env, address=info["address"], workers=info["workers"])
    process.stdin.close()
    process.wait(timeout=60)


def descendants(root: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier += children
    return found


def decode(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/tcp{,6}: hex, in 32-bit little-endian words."""
    host = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, len(address), 8))
    ip = ipaddress.ip_address(host)
    return ip.ipv4_mapped or ip if ip.version == 6 else ip


def tcp_sockets(pids: set[int]) -> list[tuple[str, str, str]]:
    """(local, remote, state) of every TCP socket the processes hold."""
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes.update(link[8:-1] for link in links if link.startswith("socket:["))
    sockets = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                (local, _), (remote, _) = fields[1].split(":"), fields[2].split(":")
                sockets.append((decode(local), decode(remote), fields[3]))
    return sockets


def off_loopback(pids: set[int]) -> list[str]:
    listening = "0A"  # a listening socket's remote end is all zeros
    return [f"{local} -> {remote}" for local, remote, state in tcp_sockets(pids)
            if not local.is_loopback or (state != listening and not remote.is_loopback)]


def trial_attempts(sweep: Path) -> dict[str, list[dict]]:
    return {str(path.parent.relative_to(sweep)): [json.loads(line) for line in path.read_text().splitlines() if line]
            for path in sweep.glob("*/seed*/attempts.jsonl")}


def eval_returns(sweep: Path) -> dict[str, list[list[float]]]:
    return {str(path.parent.relative_to(sweep)): [json.loads(line)["returns"] for line in path.read_text().splitlines()]
            for path in sorted(sweep.glob("*/seed*/eval.jsonl"))}


def test_bad_address_and_missing_or_wrong_token_get_one_line_errors_at_once(cluster, tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    result = scalerl("sweep", *SWEEP, "--address", f"127.0.0.1:{port}", "-o", str(tmp_path / "a"), env=cluster.env)
    assert result.returncode == 2 and said(result.stderr) == (
        f"scalerl: error: no Ray cluster answers at 127.0.0.1:{port} (Connection refused); `ray status` on the "
        "head node prints its address")
    result = scalerl("sweep", *SWEEP, "--address", "head-node", "-o", str(tmp_path / "b"), env=cluster.env)
    assert result.returncode == 2 and "is not host:port" in said(result.stderr)
    no_token = {key: value for key, value in cluster.env.items() if key != "RAY_AUTH_TOKEN"}
    no_token["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    result = scalerl("sweep", *SWEEP, "--address", cluster.address, "-o", str(tmp_path / "c"), env=no_token)
    assert result.returncode == 2 and said(result.stderr) == (
        f"scalerl: error: the Ray cluster at {cluster.address} wants a token and none was found here: copy the "
        "head's ~/.ray/auth_token to this machine, or set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH)")
    no_token.pop("RAY_AUTH_MODE")  # a fresh machine: Ray sends no token and is refused
    result = scalerl("sweep", *SWEEP, "--address", cluster.address, "-o", str(tmp_path / "d"), env=no_token)
    assert result.returncode == 2 and said(result.stderr) == (
        f"scalerl: error: cannot join the Ray cluster at {cluster.address}: it wants a token and none was sent: set "
        "RAY_AUTH_MODE=token and give it the head's token "
        "(copy ~/.ray/auth_token from the head, or set RAY_AUTH_TOKEN)")
    wrong = {**cluster.env, "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    result = scalerl("sweep", *SWEEP, "--address", cluster.address, "-o", str(tmp_path / "e"), env=wrong)
    assert result.returncode == 2 and said(result.stderr) == (
        f"scalerl: error: cannot join the Ray cluster at {cluster.address}: it refused this machine's token, which is "
        "not the head's (~/.ray/auth_token, RAY_AUTH_TOKEN)")


def test_a_port_that_is_not_a_ray_head_gets_a_one_line_error_in_bounded_time(tmp_path):
    """A server that accepts and never answers (a wrong port) held the handshake forever; the wait is
    bounded (2 s here, 30 by default)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    code = ("import sys; import scalerl.cluster; from scalerl.cli import main; scalerl.cluster.HANDSHAKE_SECONDS = 2; "
            f"sys.exit(main({['sweep', *SWEEP, '--address', address, '-o', str(tmp_path / 'x')]!r}))")
    try:  # a handshake that waited for ever would end the test at its 120 s timeout
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    finally:
        server.close()
    assert result.returncode == 2 and said(result.stderr) == (
        f"scalerl: error: cannot join the Ray cluster at {address}: something listens there but does not answer as "
        "a Ray head within 2 s; `ray status` on the head node prints its address")


def test_nodes_that_cannot_see_the_sweep_folder_are_named():
    nodes = [{"NodeID": "a" * 56, "NodeManagerAddress": "10.0.0.1"},
             {"NodeID": "b" * 56, "NodeManagerAddress": "10.0.0.2"}]
    assert nodes_not_seeing(nodes, ["token", None], "token") == ["10.0.0.2 node bbbbbbbb"]
    assert nodes_not_seeing(nodes, ["token", "token"], "token") == []


@pytest.mark.slow  # 45 seconds; the lost-node test below already drives sweeps on the cluster
def test_study_runs_on_cluster(cluster, tmp_path):
    out = tmp_path / "least"
    result = scalerl("study", "least", "--quick", "--address", cluster.address, "-o", str(out), env=cluster.env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "# This run (quick)" in (out / "report.md").read_text()
    ran_on = {a["node"] for runs in trial_attempts(out).values() for a in runs}
    assert len(trial_attempts(out)) == 4 and ran_on <= set(cluster.workers)  # TD3 and SAC, with and without LEAST


def test_sweep_on_cluster_survives_a_lost_node_and_matches_local_ray(cluster, tmp_path, capsys):
    sweep = tmp_path / "cluster"
    driver = subprocess.Popen([sys.executable, "-m", "scalerl", "sweep", *SWEEP, "--address", cluster.address,
                               "-o", str(sweep)], env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    doomed, victim, deadline = cluster.workers[0], None, time.monotonic() + 240
    while victim is None and driver.poll() is None and time.monotonic() < deadline:
        for trial, attempts in trial_attempts(sweep).items():
            running = not (sweep / trial / "summary.json").exists()
            checkpointed = (sweep / trial / "checkpoints/latest.pt").exists()
            if attempts and attempts[-1]["node"] == doomed and running and checkpointed:
                victim = trial
                break
        time.sleep(0.1)
    assert victim is not None, "no trial reached a checkpoint on the first worker node"
    outside = off_loopback(descendants(cluster.process.pid) | descendants(driver.pid))
    cluster.process.stdin.write(f"remove {doomed}\n")
    cluster.process.stdin.flush()
    assert cluster.process.stdout.readline().strip() == "removed"
    out, err = driver.communicate(timeout=400)
    assert driver.returncode == 0, err[-2000:]
    assert outside == [], f"Ray reached past loopback: {outside}"

    # Ray prints the lost node's last raylet log lines to the driver's stdout too, after the result at times.
    result = json.loads(next(line for line in out.splitlines() if line.startswith('{"sweep_dir"')))
    assert len(result["finished"]) == 4 and result["failed"] == []
    attempts = trial_attempts(sweep)
    assert {a["node"] for runs in attempts.values() for a in runs} == set(cluster.workers)
    assert [a["node"] for a in attempts[victim]][:1] == [doomed]
    assert attempts[victim][-1] == {**attempts[victim][-1], "node": cluster.workers[1], "resume": True}
    assert result["nodes"][victim] == cluster.workers[1]

    local = tmp_path / "local"
    assert main(["sweep", *SWEEP, "--workers", "2", "-o", str(local)]) == 0, capsys.readouterr().err
    assert eval_returns(sweep) == eval_returns(local) and len(eval_returns(local)) == 4
    assert off_loopback(descendants(os.getpid())) == []  # the local Ray, still up, keeps to loopback too
