"""How fast the chord models generate, and how long a live jam frame takes.

    python benchmarks/chords_speed.py          # about a minute on one CPU thread

Models have the default sizes (ChordModelConfig(): dim 128, 3 layers) with random weights: speed does
not depend on what they learned. Reported:
- generation of a batch of accompaniments with the cached decoding, against re-running the whole
  sequence through `forward` at every frame (what generation cost before the cache);
- jam frames through the HTTP API on localhost (request, model step, reply) for 1, 8 and 32 players at
  once, through the context refreshes: median, 99th percentile and the slowest frame.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.request

import torch

from scalerl.music.jam import make_server
from scalerl.music.models import ChordModelConfig, OfflineChordModel, OnlineChordModel, choose_chord, generate
from scalerl.music.vocab import NOTE_ON, PAD


def full_pass_generate(model: torch.nn.Module, melody: torch.Tensor) -> torch.Tensor:
    """Generation without a cache: the whole sequence through forward at every frame."""
    generator = torch.Generator().manual_seed(0)
    chords = torch.full_like(melody, PAD)
    with torch.no_grad():
        for frame in range(melody.shape[1]):
            chords[:, frame] = choose_chord(model(chords, melody)[:, frame], 1.0, generator)
    return chords


def seconds(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def jam_latency(model: torch.nn.Module, frames: int, players: int, pace_ms: float) -> list[float]:
    """Milliseconds of every frame of `players` sessions playing `frames` frames each at once: one frame every
    `pace_ms` (a 16th note: 125 ms at 120 bpm), players offset evenly within it; pace 0 sends frames as fast
    as the server answers, a far harder load than players."""
    server = make_server(model, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(url + path, data=json.dumps(body).encode())
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    latencies: list[float] = []

    def play(offset: float) -> None:
        session = post("/api/session", {})["session"]
        begin = time.perf_counter() + offset
        for frame in range(frames):
            time.sleep(max(0.0, begin + frame * pace_ms / 1000 - time.perf_counter()))
            started = time.perf_counter()
            post("/api/step", {"session": session, "pitch": 60 + frame % 12, "onset": frame % 2 == 0})
            latencies.append(1000 * (time.perf_counter() - started))

    threads = [threading.Thread(target=play, args=(k * pace_ms / 1000 / players,)) for k in range(players)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server.shutdown()
    server.server_close()
    return sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--players", type=int, nargs="+", default=[1, 8, 32], help="jam sessions playing at once")
    parser.add_argument("--jam-frames", type=int, default=300,
                        help="frames each jam session plays (past 256: a refresh)")
    parser.add_argument("--pace-ms", type=float, default=125.0,
                        help="ms between a player's frames (125: 16ths at 120 bpm)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    melody = torch.randint(NOTE_ON, NOTE_ON + 128, (args.batch, args.frames))
    rows = []
    for name, model in (("online", OnlineChordModel(ChordModelConfig()).eval()),
                        ("teacher", OfflineChordModel(ChordModelConfig()).eval())):
        cached = seconds(lambda: generate(model, melody, 1.0))
        full = seconds(lambda: full_pass_generate(model, melody), repeats=1)
        rows.append(f"| {name} | {args.batch} x {args.frames} | {cached:.2f} | {full:.2f} | {full / cached:.0f}x |")
    print(f"generation, {args.threads} thread(s), seconds (best of 3):\n")
    print("| model | accompaniments x frames | cached decoding (s) | full pass per frame (s) | speed-up |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\njam frames over HTTP, {args.jam_frames} frames per player (context refreshed every "
          f"{ChordModelConfig().max_frames // 2} frames after the first {ChordModelConfig().max_frames}):\n")
    print("| players at once | pace | median (ms) | 99th percentile (ms) | slowest (ms) |\n|---|---|---|---|---|")
    for pace in (args.pace_ms, 0.0):
        for players in args.players:
            latencies = jam_latency(OnlineChordModel(ChordModelConfig()).eval(), args.jam_frames, players, pace)
            pacing = f"a frame every {pace:g} ms" if pace else "flat out"
            print(f"| {players} | {pacing} | {statistics.median(latencies):.1f} "
                  f"| {latencies[int(0.99 * len(latencies))]:.1f} | {latencies[-1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
