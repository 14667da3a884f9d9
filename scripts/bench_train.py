#!/usr/bin/env python3
"""Benchmark mini GPT-2 training throughput: tokens/s and MFU for one config.

Synthetic random tokens (no corpus, no tokenizer), the same model, optimizer,
precision and compile settings as ``python -m training.train``.

    python scripts/bench_train.py                      # gpt2-124m on CUDA, tiny on CPU
    python scripts/bench_train.py --config gpt2-124m --batch-size 32 --steps 30
    python scripts/bench_train.py --device cpu --steps 3

Exit codes: 0 ok, 2 error with a fix printed (e.g. out of GPU memory).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from training.config import CONFIGS, apply_overrides, get_config, parse_overrides  # noqa: E402
from training.engine import (  # noqa: E402
    build_optimizer,
    gpt_config,
    is_oom,
    make_runtime,
    oom_error,
    select_device,
    train_step,
)
from training.errors import EXIT_USER_ERROR, TrainingError  # noqa: E402
from training.metrics import mfu, peak_flops  # noqa: E402
from training.model import GPT, flops_per_token  # noqa: E402
from training.tokenizer import padded_vocab_size  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config", choices=sorted(CONFIGS), help="default: gpt2-124m on CUDA, tiny elsewhere"
    )
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    p.add_argument("--batch-size", type=int, help="micro-batch size (sequences)")
    p.add_argument("--grad-accum", type=int, default=1, help="accumulation steps (default 1)")
    p.add_argument("--steps", type=int, help="timed steps (default: 20 on CUDA, 5 on CPU)")
    p.add_argument(
        "--warmup",
        type=int,
        help="untimed warm-up steps (default: 5 on CUDA for compile, 1 on CPU)",
    )
    p.add_argument("--no-compile", action="store_true", help="disable torch.compile")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="also print one JSON line")
    return p


@dataclass
class BenchResult:
    config: str
    device: str
    gpu_name: str | None
    precision: str
    compile: bool
    batch_size: int
    grad_accum_steps: int
    block_size: int
    params: int
    steps: int
    step_time_s: float
    tokens_per_s: float
    mfu: float | None
    peak_flops: float | None
    max_memory_gib: float | None
    last_loss: float


def bench(args: argparse.Namespace) -> BenchResult:
    device = select_device(args.device, require_cuda=False)
    cuda = device.type == "cuda"
    name = args.config or ("gpt2-124m" if cuda else "tiny")
    overrides = parse_overrides(list(args.overrides))
    if args.batch_size is not None:
        overrides["batch_size"] = str(args.batch_size)
    overrides["grad_accum_steps"] = str(args.grad_accum)
    if args.no_compile:
        overrides["compile"] = "false"
    cfg = apply_overrides(get_config(name), overrides)
    cfg.validate()
    steps = args.steps if args.steps is not None else (20 if cuda else 5)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    rt = make_runtime(cfg, device)
    vocab = cfg.vocab_size or padded_vocab_size(cfg.tokenizer_vocab_size)
    gcfg = gpt_config(cfg, vocab)
    torch.manual_seed(cfg.seed)
    try:
        model = GPT(gcfg).to(device)
        optimizer = build_optimizer(model, cfg, rt)
        train_model: Any = torch.compile(model) if rt.compile else model
        gen = torch.Generator(device=device).manual_seed(cfg.seed)

        def batch_fn(step0: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
            shape = (cfg.batch_size, cfg.block_size + 1)
            seq = torch.randint(vocab, shape, device=device, generator=gen)
            return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()

        for i in range(warmup):
            train_step(train_model, optimizer, cfg, rt, i, batch_fn)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        loss = 0.0
        for i in range(steps):
            loss, _ = train_step(train_model, optimizer, cfg, rt, warmup + i, batch_fn)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    except Exception as exc:
        if is_oom(exc):
            raise oom_error(cfg, device) from None
        raise
    tps = steps * cfg.tokens_per_step / dt
    gpu_name = torch.cuda.get_device_name(device) if cuda else None
    peak = peak_flops(device.type, gpu_name, cfg.peak_flops)
    n_params = model.num_params()
    return BenchResult(
        config=cfg.name,
        device=str(device),
        gpu_name=gpu_name,
        precision=rt.precision,
        compile=rt.compile,
        batch_size=cfg.batch_size,
        grad_accum_steps=cfg.grad_accum_steps,
        block_size=cfg.block_size,
        params=n_params,
        steps=steps,
        step_time_s=dt / steps,
        tokens_per_s=tps,
        mfu=mfu(flops_per_token(gcfg, n_params), tps, peak),
        peak_flops=peak,
        max_memory_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        last_loss=loss,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        res = bench(args)
    except TrainingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        print(f"fix: {exc.fix}", file=sys.stderr)
        return EXIT_USER_ERROR
    mfu_txt = "n/a (CPU or unknown GPU)" if res.mfu is None else f"{res.mfu:.1%}"
    gpu = f" ({res.gpu_name})" if res.gpu_name else ""
    print(
        f"config: {res.config} | device: {res.device}{gpu} | {res.precision} | "
        f"compile {'on' if res.compile else 'off'}"
    )
    print(
        f"batch: {res.batch_size} x ctx {res.block_size} x accum {res.grad_accum_steps} | "
        f"params {res.params / 1e6:.1f} M"
    )
    print(f"step time: {res.step_time_s * 1000:.1f} ms over {res.steps} steps")
    print(f"tokens/s: {res.tokens_per_s:,.0f}")
    print(f"MFU: {mfu_txt}")
    if res.max_memory_gib is not None:
        print(f"peak GPU memory: {res.max_memory_gib:.1f} GiB")
    if args.json:
        print(json.dumps(asdict(res), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
