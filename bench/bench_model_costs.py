"""Whole-model cost of a CNN and three Transformers, side by side (chapter 4 reads the JSON it writes).

ResNet-50 (torchvision's architecture), ViT-S/16 (= DeiT-S), ViT-B/16 and Swin-T, random weights, float32,
eval mode, no gradients, on the CPU. For each model and input side (224, 448, 896 by default):

* parameters; multiply-adds (MACs, the papers' "FLOPs") counted by ``FlopCounterMode`` on the ``meta``
  device with unfused attention (``course_lib.complexity.measure_flops``) and, for the Transformers, the
  part spent in the attention products ``QK^T`` and ``AV`` (``vit_macs`` / ``swin_macs``);
* peak memory allocated during one forward of one image, beyond the weights and the input
  (``course_lib.complexity.peak_memory``), with torch's fused attention kernel and without it;
* time per forward (batch 1; median of ``--rounds``; sides up to ``--time-max-side``) and images per
  second at batch 8 at 224, fused and unfused; both wall-clock and CPU time of the process
  (``time.process_time``), since on a shared machine the wall clock also counts the wait for a core.

Writes ``bench/model_costs.json`` with the date, torch version, thread count, CPU and load average (the
machine may be shared: read the times as a snapshot, the ratios between models as the result).

    python bench/bench_model_costs.py [--sides 224 448 896] [--rounds 3] [--threads 1] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torchvision

from course_lib.attention import fused_attention
from course_lib.complexity import count_parameters, measure_flops, peak_memory, swin_macs, vit_macs
from course_lib.swin import create_swin
from course_lib.vit import create_vit

MODELS = {
    "ResNet-50": "resnet50",
    "ViT-S/16 (DeiT-S)": "vit_small_patch16_224",
    "ViT-B/16": "vit_base_patch16_224",
    "Swin-T": "swin_tiny_patch4_window7_224",
}


def build(name: str, side: int) -> torch.nn.Module:
    if name == "resnet50":
        return torchvision.models.resnet50(weights=None)
    if name.startswith("vit"):
        return create_vit(name, img_size=side)
    return create_swin(name, img_size=side)


def attention_macs_of(name: str, side: int) -> int:
    if name.startswith("vit"):
        return vit_macs(name, img_size=side).macs["attention"]
    if name.startswith("swin"):
        return swin_macs(name, img_size=side).macs["attention"]
    return 0


def seconds(fn, *args: torch.Tensor, rounds: int) -> tuple[float, float]:
    """Median wall-clock seconds and median CPU seconds of this process (``time.process_time``) per call.

    On a shared machine the wall clock includes time spent waiting for a core; the CPU time does not,
    so it is the steadier measure of the work itself (with one thread, the two agree on an idle machine).
    """
    wall, cpu = [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(*args)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[224, 448, 896])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-max-side", type=int, default=448)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("model_costs.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "dtype": "float32", "mode": "eval, torch.no_grad()",
        "rows": [],
    }
    for label, name in MODELS.items():
        for side in args.sides:
            torch.manual_seed(0)
            with torch.device("meta"):
                macs = measure_flops(build(name, side), torch.empty(1, 3, side, side)) // 2
            model = build(name, side).eval()
            x = torch.randn(1, 3, side, side)
            row = {"model": label, "name": name, "side": side, "params": count_parameters(model),
                   "macs": macs, "attention_macs": attention_macs_of(name, side)}
            for fused in (True, False):
                key = "fused" if fused else "unfused"
                with fused_attention(fused), torch.no_grad():
                    model(x)                                             # warm-up
                    row[f"peak_bytes_{key}"] = peak_memory(model, x)
                    if side <= args.time_max_side:
                        wall, cpu = seconds(model, x, rounds=args.rounds)
                        row[f"wall_seconds_batch1_{key}"], row[f"cpu_seconds_batch1_{key}"] = wall, cpu
                    if side == 224:
                        xb = torch.randn(args.batch, 3, side, side)
                        wall, cpu = seconds(model, xb, rounds=args.rounds)
                        row[f"images_per_wall_s_batch{args.batch}_{key}"] = args.batch / wall
                        row[f"images_per_cpu_s_batch{args.batch}_{key}"] = args.batch / cpu
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_seconds"] = round(time.time() - started, 1)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} in {result['wall_seconds']} s")


if __name__ == "__main__":
    main()
