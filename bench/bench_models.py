"""Time course_lib's ViT-S/16 and Swin-T against timm with the same weights (a benchmark, not a test).

For each model: batch 8, float32, forward (eval, no grad) and forward+backward (train mode, no dropout),
on the CPU (and CUDA when present). The two implementations are run alternately, ``--rounds`` times
(each round flips which goes first), and the median of each is printed with the ratio
course_lib / timm (goal: <= 1.00; Swin aims at 0.90).
Achieved GFLOP/s (multiply-add = 2 FLOPs, analytic count of :mod:`course_lib.complexity`; backward
counted as twice the forward) are printed next to the rate of one large float32 matmul.

    python bench/bench_models.py [--quick] [--rounds 7] [--batch 8] [--device cpu|cuda|all] [--profile]
                                 [--baseline PATH] [--clock wall|cpu]

``--baseline PATH`` also times the ``course_lib`` of another checkout (e.g. ``git worktree add
/tmp/before <commit>``), loaded as a second package, in the same rounds: before/after ratios measured
in one run, on the same machine load. ``--clock cpu`` times the CPU time of this process
(``time.process_time``, all its threads) instead of the wall clock: on a machine shared with other jobs
it measures the work done, not the time spent waiting for a core (use it with a fixed thread count).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TIMM_FUSED_ATTN", "1")  # timm's defaults: fused attention in ViT (Swin opts out)

import timm  # noqa: E402
import torch  # noqa: E402

from course_lib.complexity import count_parameters, swin_macs, vit_macs  # noqa: E402
from course_lib.convert import swin_from_timm, vit_from_timm  # noqa: E402

MODELS = {"vit_small_patch16_224": vit_macs, "swin_tiny_patch4_window7_224": swin_macs}


def load_baseline(tree: str):
    """The ``course_lib.convert`` module of the checkout at ``tree``, imported as package ``baseline_lib``."""
    init = Path(tree) / "course_lib" / "__init__.py"
    if not init.is_file():
        raise SystemExit(f"--baseline {tree}: no course_lib/__init__.py there")
    spec = importlib.util.spec_from_file_location(
        "baseline_lib", init, submodule_search_locations=[str(init.parent)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["baseline_lib"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("baseline_lib.convert")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


CLOCK = time.perf_counter


def _time(fn, device: torch.device) -> float:
    _sync(device)
    t0 = CLOCK()
    fn()
    _sync(device)
    return CLOCK() - t0


def matmul_gflops(device: torch.device, n: int = 4096, repeats: int = 3) -> float:
    """The rate of one ``n x n`` float32 matmul (2 n^3 FLOPs), best of ``repeats``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    best = min(_time(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def bench_model(name: str, device: torch.device, batch: int, rounds: int, baseline=None) -> dict:
    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False, drop_path_rate=0.0).to(device)
    ours = (vit_from_timm if name.startswith("vit") else swin_from_timm)(ref).to(device)
    assert count_parameters(ours) == count_parameters(ref)
    models = [("timm", ref), ("course_lib", ours)]
    if baseline is not None:
        base = (baseline.vit_from_timm if name.startswith("vit") else baseline.swin_from_timm)(ref).to(device)
        models.append(("baseline", base))
    x = torch.randn(batch, 3, 224, 224, device=device)
    macs = MODELS[name](ours.config).total * batch

    def fwd(model):
        model.eval()
        with torch.no_grad():
            model(x)

    def fwd_bwd(model):
        model.train()
        model(x).sum().backward()
        model.zero_grad(set_to_none=True)

    results = {}
    for label, step, flops in (("fwd", fwd, 2 * macs), ("fwd+bwd", fwd_bwd, 6 * macs)):
        for _, m in models:  # warm-up
            step(m)
        times = {key: [] for key, _ in models}
        for r in range(rounds):
            # Alternate which model goes first: a fixed order gave the second one a steady ~5%
            # handicap here (ViT-S forward, same operators: 1.06 in fixed order, 1.00 alternating).
            for key, model in models if r % 2 == 0 else models[::-1]:
                times[key].append(_time(lambda s=step, m=model: s(m), device))
        results[label] = ({key: statistics.median(t) for key, t in times.items()}, flops)
    return results


def profile_model(name: str, batch: int, rows: int = 12) -> None:
    """torch.profiler's top operators by self CPU time, forward pass, timm then course_lib."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False, drop_path_rate=0.0).eval()
    ours = (vit_from_timm if name.startswith("vit") else swin_from_timm)(ref).eval()
    x = torch.randn(batch, 3, 224, 224)
    for label, model in (("timm", ref), ("course_lib", ours)):
        with torch.no_grad():
            model(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    model(x)
        print(f"\n--- {name} forward, {label}: top ops by self CPU time (3 runs) ---")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--profile", action="store_true", help="also print a torch.profiler breakdown (CPU)")
    p.add_argument("--baseline", metavar="PATH", help="also time the course_lib of the checkout at PATH")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="wall clock or process CPU time")
    args = p.parse_args(argv)
    baseline = load_baseline(args.baseline) if args.baseline else None
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    rounds = 3 if args.quick else args.rounds
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(
        f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} CPU threads, "
        f"batch {args.batch}, float32, median of {rounds} interleaved rounds, {args.clock} clock"
    )
    for device in devices:
        peak = matmul_gflops(device)
        print(f"\n[{device}] 4096x4096 float32 matmul: {peak:.1f} GFLOP/s")
        extra = f" {'base ms':>9s} {'base/timm':>9s} {'ours/base':>9s}" if baseline else ""
        print(
            f"{'model':30s} {'pass':8s} {'timm ms':>9s} {'ours ms':>9s} {'ours/timm':>9s} "
            f"{'timm GF/s':>9s} {'ours GF/s':>9s} {'ours/mm':>8s}{extra}"
        )
        for name in args.models:
            for label, (t, flops) in bench_model(name, device, args.batch, rounds, baseline).items():
                t_ref, t_ours = t["timm"], t["course_lib"]
                line = (
                    f"{name:30s} {label:8s} {t_ref * 1e3:9.1f} {t_ours * 1e3:9.1f} {t_ours / t_ref:9.3f} "
                    f"{flops / t_ref / 1e9:9.1f} {flops / t_ours / 1e9:9.1f} "
                    f"{flops / t_ours / 1e9 / peak:8.2f}"
                )
                if baseline:
                    t_base = t["baseline"]
                    line += f" {t_base * 1e3:9.1f} {t_base / t_ref:9.3f} {t_ours / t_base:9.3f}"
                print(line)
    if args.profile:
        for name in args.models:
            profile_model(name, args.batch)


if __name__ == "__main__":
    main()
