"""Forward/backward cost of each bottleneck, so a study can see what a choice costs before running it.

Impala encoder on a batch of 32 84x84x4 uint8 frames, 18 outputs; for each bottleneck at each width:
parameters, and the median time of a forward pass, of forward + backward (sum of outputs), and of
forward + backward from the encoder's output on (the bottleneck's own cost), over `--repeats` calls
after two warm-up calls. The dense layer after the bottleneck follows the papers:
flatten and gap feed Dense(512 x width) (torso depth 1); tokenized bottlenecks end in their mixer
(torso depth 0): a per-token Dense(512 x width) averaged over tokens, or a SoftMoE with 4 experts
of 512 x width hidden units whose output tokens are flattened into the head.

    python benchmarks/net_timing.py                          # widths 1 and 4, 2 threads
    python benchmarks/net_timing.py --widths 1 --threads 1 --encoder nature_cnn
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from scalerl.nets import NetConfig, build_network, parameter_count

BOTTLENECKS = [
    ("flatten", "-"), ("gap", "-"),
    *[(kind, mixer) for kind in ("per_conv", "per_patch", "per_feat", "per_sample", "shuffled")
      for mixer in ("dense", "softmoe")],
]


def spec(encoder: str, bottleneck: str, mixer: str, width: float) -> NetConfig:
    if mixer == "-":
        return NetConfig(encoder=encoder, bottleneck=bottleneck, hidden=512, depth=1, width=width)
    pool = "flatten" if mixer == "softmoe" else "mean"
    return NetConfig(encoder=encoder, bottleneck=bottleneck, mixer=mixer, pool=pool, hidden=512, depth=0,
                     expert_hidden=512, experts=4, width=width)


def median_ms(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="impala", choices=["impala", "nature_cnn"])
    parser.add_argument("--widths", nargs="+", type=float, default=[1.0, 4.0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "net_timing.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    frames = torch.randint(0, 256, (args.batch, 4, 84, 84), dtype=torch.uint8, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    for width in args.widths:
        for bottleneck, mixer in BOTTLENECKS:
            torch.manual_seed(0)
            net = build_network(spec(args.encoder, bottleneck, mixer, width), space, 18).to(device)

            def forward() -> None:
                with torch.no_grad():
                    net(frames)
                sync()

            def forward_backward() -> None:
                net.zero_grad(set_to_none=True)
                net(frames).sum().backward()
                sync()

            with torch.no_grad():
                maps = net.encoder(frames)
            maps.requires_grad_(True)

            def after_encoder() -> None:
                net.zero_grad(set_to_none=True)
                net.head(net.torso(net.bottleneck(maps))).sum().backward()
                sync()

            row = {"width": width, "bottleneck": bottleneck, "mixer": mixer, "parameters": parameter_count(net),
                   "forward_ms": median_ms(forward, args.repeats),
                   "forward_backward_ms": median_ms(forward_backward, args.repeats),
                   "after_encoder_ms": median_ms(after_encoder, args.repeats)}
            rows.append(row)
            print(f"width {width:g} {bottleneck:10s} {mixer:7s} {row['parameters']:>12,d} params "
                  f"fwd {row['forward_ms']:8.1f} ms  fwd+bwd {row['forward_backward_ms']:8.1f} ms  "
                  f"after encoder {row['after_encoder_ms']:8.1f} ms", flush=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "encoder": args.encoder, "batch": args.batch, "threads": args.threads,
            "device": args.device, "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print("\n| width | bottleneck | mixer | parameters | forward (ms) | forward + backward (ms) "
          "| of which after the encoder (ms) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['width']:g} | {row['bottleneck']} | {row['mixer']} | {row['parameters']:,} | "
              f"{row['forward_ms']:.1f} | {row['forward_backward_ms']:.1f} | {row['after_encoder_ms']:.1f} |")


if __name__ == "__main__":
    main()
