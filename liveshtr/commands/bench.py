"""Measure a model on this machine: the bare onnxruntime step, the whole engine per hop, offline render speed,
the headroom left in each audio block and, where PyTorch is installed, the same architecture stepped in eager
PyTorch. Medians and 99th percentiles over many steps, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from liveshtr.commands.common import (
    add_model_argument,
    add_precision_argument,
    check_engine_settings,
    describe_model,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_argument(p, optional=False)
    p.add_argument("--steps", type=int, default=2000, help="steps timed per measurement")
    p.add_argument("--render-seconds", type=float, default=30.0, help="length of the timed offline render")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="where the model runs")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: 1, 2 for hidden >= 512)")
    add_precision_argument(p)
    p.add_argument("--samplerate", type=int, default=48000, help="output rate of the engine measurements")
    p.add_argument("--blocksize", type=int, default=256, help="audio block for the headroom figure")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch eager comparison")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")


def timings(fn, steps: int, warmup: int = 50) -> dict:
    return interleaved({"only": fn}, steps, warmup)["only"]


def interleaved(fns: dict, steps: int, warmup: int = 50, rounds: int = 10) -> dict:
    """Median and p99 per function, timed in alternating rounds so that drifts of a shared machine (clock
    ramps, neighbours) fall on every candidate alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    per_round = max(1, steps // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {
        name: {"median_us": round(float(np.median(t)) * 1e6, 1), "p99_us": round(float(np.percentile(t, 99)) * 1e6, 1)}
        for name, t in times.items()
    }


def torch_eager(bundle, steps: int, threads: int) -> dict | str:
    """The same architecture stepped in eager PyTorch (weights random: only the time is compared)."""
    try:
        import torch

        from liveshtr.config import MagnitudeConfig
        from liveshtr.training.magnitude_model import MagnitudeModel, MagnitudeStep
    except ImportError:
        return "PyTorch is not installed (pip install torch, then liveshtr[train])"
    torch.set_num_threads(threads)
    shapes = {n: t["shape"] for n, t in bundle.meta["tensors"].items()}
    L = bundle.latent_dim
    cfg = MagnitudeConfig(**bundle.meta["model"])
    graph = MagnitudeStep(MagnitudeModel(cfg).eval(), torch.zeros(L), torch.ones(L), torch.ones(cfg.features))
    graph.eval()
    feeds = {name: torch.zeros(shapes[name]) for name in graph.INPUTS}
    feeds["temperature"] = torch.ones(1)

    def step():
        frame, h, c, _, _ = graph(**feeds)
        feeds.update(frame=frame, h_in=h, c_in=c)

    with torch.inference_mode():
        return timings(step, steps)


def run(args: argparse.Namespace) -> int:
    from liveshtr.bundle import load_bundle
    from liveshtr.errors import ConfigError
    from liveshtr.live.engine import Engine
    from liveshtr.live.generator import Generator
    from liveshtr.live.params import Params
    from liveshtr.live.runtime import StepModel

    args.lookahead_ms, args.max_lookahead_ms = 40.0, 40.0
    check_engine_settings(args)
    if args.steps < 100:
        raise ConfigError("--steps: time at least 100 steps")
    bundle = load_bundle(args.model)
    threads = args.threads
    hop_s = bundle.frames.hop / bundle.audio.samplerate
    result: dict = {
        "model": str(bundle.path),
        "layers": bundle.layers,
        "hidden": bundle.hidden,
        "hop_ms": round(hop_s * 1000, 3),
        "threads": threads,
    }

    bound = StepModel(bundle, device=args.device, threads=threads, precision=args.precision)
    result["device"] = bound.device
    result["provider"] = bound.session.get_providers()[0]
    result["precision"] = bound.precision
    result["threads"] = threads = bound.threads
    plain = StepModel(bundle, device=bound.device, threads=threads, iobinding=False, precision=bound.precision)
    candidates = {"step_iobinding": bound.step, "step_plain_run": plain.step}
    if bound.device == "cpu" and bundle.has_int8:  # both precisions, side by side
        other = "float32" if bound.precision == "int8" else "int8"
        candidates[f"step_{other}"] = StepModel(bundle, threads=threads, precision=other).step
    result.update(interleaved(candidates, args.steps))
    if len(candidates) == 3:
        result[f"step_{bound.precision}"] = result["step_iobinding"]

    engine = Engine(Generator(bundle, bound, seed=0), Params.for_bundle(bundle), args.samplerate, args.blocksize)

    def hop():
        engine.produce_hop()
        engine.ring.drop()

    result["engine_per_hop"] = timings(hop, args.steps)
    engine_s = result["engine_per_hop"]["median_us"] / 1e6
    result["engine_over_step"] = round(engine_s * 1e6 / result["step_iobinding"]["median_us"], 2)
    result["realtime_factor"] = round(hop_s / engine_s, 1)
    block_s = args.blocksize / args.samplerate
    hops_per_block = block_s / hop_s
    result["block_ms"] = round(block_s * 1000, 2)
    result["block_load_percent"] = round(100 * engine_s * hops_per_block / block_s, 2)
    for rate in (bundle.audio.samplerate, args.samplerate):
        fresh = Engine(Generator(bundle, bound, seed=0), Params.for_bundle(bundle), rate, args.blocksize)
        fresh.render(1.0)
        started = time.perf_counter()
        fresh.render(args.render_seconds)
        result[f"render_x_realtime_at_{rate}"] = round(args.render_seconds / (time.perf_counter() - started), 1)
    if not args.no_torch:
        result["torch_eager_step"] = torch_eager(bundle, min(args.steps, 1000), threads)

    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model        {describe_model(bundle)}")
    print(f"provider     {result['provider']} ({result['device']}, {result['precision']} weights), {threads} thread(s)")
    s, p = result["step_iobinding"], result["step_plain_run"]
    print(
        f"step         median {s['median_us']:.0f} us, p99 {s['p99_us']:.0f} us (IOBinding); "
        f"plain session.run median {p['median_us']:.0f} us"
    )
    if "step_float32" in result and "step_int8" in result:
        f, q = result["step_float32"], result["step_int8"]
        print(
            f"precision    float32 median {f['median_us']:.0f} us, int8 median {q['median_us']:.0f} us "
            f"({f['median_us'] / q['median_us']:.2f}x)"
        )
    e = result["engine_per_hop"]
    print(
        f"engine/hop   median {e['median_us']:.0f} us, p99 {e['p99_us']:.0f} us = {result['engine_over_step']}x "
        f"the step; {result['realtime_factor']}x real time (hop {result['hop_ms']} ms)"
    )
    print(
        f"headroom     {result['block_load_percent']:.1f}% of each {result['block_ms']} ms block "
        f"({args.blocksize} at {args.samplerate} Hz)"
    )
    for rate in (bundle.audio.samplerate, args.samplerate):
        print(f"render       {result[f'render_x_realtime_at_{rate}']}x real time at {rate} Hz")
    if "torch_eager_step" in result:
        t = result["torch_eager_step"]
        if isinstance(t, dict):
            print(
                f"torch eager  median {t['median_us']:.0f} us, p99 {t['p99_us']:.0f} us per step "
                f"({t['median_us'] / s['median_us']:.1f}x the onnxruntime step)"
            )
        else:
            print(f"torch eager  skipped: {t}")
    return 0
