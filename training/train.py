"""Mini GPT-2 training job.

Usage (from the repository root)::

    python -m training.train --config tiny --out DIR [--steps N] [--device auto|cpu|cuda]
        [--require-cuda] [--corpus PATH] [--textfile-dir DIR] [--resume] [--set key=value]

Outputs go to ``DIR/openllm_gpu_training_run/``. Exit codes: 0 ok (read RUN_KIND for
the label), 1 internal error, 2 error with a fix printed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import torch

from training import RUN_DIR_NAME, checkpoint, envreport
from training.config import (
    ARCH_KEYS,
    CONFIGS,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    get_config,
    parse_overrides,
)
from training.data import (
    Corpus,
    TokenData,
    batch_generator,
    get_batch,
    load_corpus,
    split_tokens,
)
from training.engine import (
    Runtime,
    build_optimizer,
    estimate_loss,
    gpt_config,
    is_oom,
    make_runtime,
    oom_error,
    select_device,
    train_step,
)
from training.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USER_ERROR,
    ConfigError,
    CorpusError,
    TrainingError,
)
from training.metrics import CsvLog, PromWriter, mfu, peak_flops
from training.model import GPT, flops_per_token
from training.runlog import (
    INCOMPLETE,
    LOG_NAME,
    RUN_KINDS,
    RunLog,
    decide_run_kind,
    write_run_kind,
)
from training.tokenizer import (
    eot_id,
    load_tokenizer_json,
    pad_tokenizer,
    resolve_model_vocab,
    train_tokenizer,
)

CSV_NAME = "training_log.csv"
ENV_NAME = "environment_report.json"
SAMPLE_NAME = "sample.txt"
EXPORT_NAME = "hf_export"
LOGIT_ATOL = 1e-3  # run-time export check (the unit test uses 1e-4)


@dataclass
class RunOptions:
    config_name: str = "tiny"
    overrides: dict[str, str] = field(default_factory=dict)
    out: Path = Path("out")
    device: str = "auto"
    require_cuda: bool = False
    corpus: Path | None = None
    textfile_dir: Path | None = None
    resume: bool = False
    stop_after: int | None = None  # stop (incomplete) after this absolute step
    time_limit_s: float | None = None  # stop (incomplete) after this many seconds
    run_kind: str | None = None  # requested label; only a cross-check
    export: bool = True


@dataclass
class RunResult:
    run_dir: Path
    run_kind: str
    step: int
    max_steps: int
    losses: list[float]
    val_loss: float | None = None
    tokens_per_s: float | None = None
    mfu: float | None = None
    sample: str | None = None
    export_dir: Path | None = None
    checkpoint: Path | None = None
    logit_diff: float | None = None


class _StopFlag:
    """Set by SIGTERM / SIGINT: finish the current step, checkpoint, exit 130."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.signal = signum


class Interrupted(Exception):
    def __init__(self, step: int, ckpt: Path | None) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step = step
        self.ckpt = ckpt


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _resolve_config(opts: RunOptions, ckpt: dict[str, Any] | None) -> TrainConfig:
    if ckpt is None:
        cfg = apply_overrides(get_config(opts.config_name), opts.overrides)
    else:
        saved = config_from_dict(ckpt["config"])
        if saved.name != opts.config_name:
            raise ConfigError(
                f"the checkpoint was made with --config {saved.name}, not {opts.config_name}",
                f"rerun with --config {saved.name} --resume, or drop --resume to start over",
            )
        cfg = apply_overrides(saved, opts.overrides)
        changed = sorted(k for k in ARCH_KEYS if getattr(cfg, k) != getattr(saved, k))
        if changed:
            raise ConfigError(
                f"cannot change {', '.join(changed)} when resuming (model shape is fixed)",
                "drop those overrides, or drop --resume to start a fresh run",
            )
    cfg.validate()
    return cfg


def _load_corpus_for(opts: RunOptions, ckpt: dict[str, Any] | None) -> Corpus:
    if ckpt is None:
        return load_corpus(opts.corpus)
    saved = ckpt.get("corpus", {})
    path: Path | None = opts.corpus
    if path is None and not saved.get("pinned", True):
        path = Path(saved["path"])
    corpus = load_corpus(path)
    if saved.get("sha256") and corpus.sha256 != saved["sha256"]:
        raise CorpusError(
            f"corpus {corpus.path} changed since the checkpoint (sha256 {corpus.sha256[:12]}…, "
            f"checkpoint has {str(saved['sha256'])[:12]}…)",
            "resume with the same corpus file, or drop --resume to start over",
        )
    return corpus


def run(opts: RunOptions) -> RunResult:
    """Run one training job; raises :class:`TrainingError` for operator errors."""
    run_dir = Path(opts.out).expanduser().resolve() / RUN_DIR_NAME
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / checkpoint.CHECKPOINT_NAME
    resuming = opts.resume and ckpt_path.exists()
    log = RunLog(run_dir / LOG_NAME, append=resuming)
    write_run_kind(run_dir, INCOMPLETE)
    prom = _prom_for(opts, opts.config_name, opts.device)
    try:
        return _run(opts, run_dir, ckpt_path, resuming, log, prom)
    except BaseException as exc:
        if isinstance(exc, TrainingError):
            log.file_only(f"error: {exc.message}")
            log.file_only(f"fix: {exc.fix}")
        elif isinstance(exc, Interrupted | KeyboardInterrupt):
            log.file_only(f"interrupted: {exc}")
        else:
            log.file_only(f"error: {type(exc).__name__}: {exc}")
        log.file_only(f"RUN_KIND: {INCOMPLETE}")
        if prom is not None:
            status = "incomplete" if isinstance(exc, Interrupted | KeyboardInterrupt) else "failed"
            with contextlib.suppress(OSError):
                prom.mark(status)
        raise
    finally:
        log.close()


def _prom_for(opts: RunOptions, config_name: str, device: str) -> PromWriter | None:
    if opts.textfile_dir is None:
        return None
    return PromWriter(Path(opts.textfile_dir).expanduser(), config_name, device)


def _install_signal_handlers(stop: _StopFlag) -> dict[int, Any]:
    old: dict[int, Any] = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, stop)
    except ValueError:  # not in the main thread (e.g. some test runners)
        pass
    return old


def _restore_signal_handlers(old: dict[int, Any]) -> None:
    for sig, handler in old.items():
        with contextlib.suppress(ValueError):
            signal.signal(sig, handler)


def _run(
    opts: RunOptions,
    run_dir: Path,
    ckpt_path: Path,
    resuming: bool,
    log: RunLog,
    prom: PromWriter | None,
) -> RunResult:
    t_start = time.monotonic()
    env_path = run_dir / ENV_NAME
    envreport.write(
        env_path,
        envreport.collect(
            None, {"requested_device": opts.device, "require_cuda": opts.require_cuda}
        ),
    )
    if opts.resume and not resuming:
        log.line(f"note: --resume given but no checkpoint at {ckpt_path}; starting fresh")

    device = select_device(opts.device, opts.require_cuda)
    state = checkpoint.load_checkpoint(ckpt_path) if resuming else None
    cfg = _resolve_config(opts, state)
    rt = make_runtime(cfg, device)
    env = envreport.collect(
        str(device),
        {
            "requested_device": opts.device,
            "require_cuda": opts.require_cuda,
            "config": cfg.name,
            "precision": rt.precision,
            "compile": rt.compile,
        },
    )
    envreport.write(env_path, env)
    gpu_name = env.get("gpu_name") if device.type == "cuda" else None
    if prom is not None:
        prom.config_name, prom.device = cfg.name, device.type
        try:
            prom.write(
                step=int(state["step"]) if state else 0,
                total_steps=cfg.max_steps,
                loss=None,
                tokens_per_s=None,
                mfu_value=None,
                eta_s=None,
                status="running",
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot write Prometheus metrics to {prom.path}: {exc.strerror or exc}",
                "make --textfile-dir a writable directory (node_exporter textfile collector)",
            ) from None

    header = "resumed" if resuming else "started"
    log.line(
        f"== mini GPT-2 training ({cfg.name}) {header} {time.strftime('%Y-%m-%d %H:%M:%S')} =="
    )
    dev_desc = str(device)
    if device.type == "cuda":
        dev_desc += f" ({gpu_name}, {env.get('gpu_memory_gib')} GiB, CUDA {torch.version.cuda})"
    log.line(
        f"device: {dev_desc} | torch {torch.__version__} | threads "
        f"{torch.get_num_threads()} | precision {rt.precision} | compile "
        f"{'on' if rt.compile else 'off'} | fused AdamW {'on' if rt.fused_adamw else 'off'}"
    )

    # --- corpus + tokenizer ---
    corpus = _load_corpus_for(opts, state)
    log.line(
        f"corpus: {corpus.path} ({corpus.n_bytes:,} bytes, sha256 {corpus.sha256}, "
        f"{'pinned+verified' if corpus.pinned else 'user-given, recorded'})"
    )
    t_tok = time.monotonic()
    if state is not None:
        tok = load_tokenizer_json(str(state["tokenizer_json"]))
        model_vocab = tok.get_vocab_size(with_added_tokens=True)
        n_bpe = model_vocab - sum(
            1
            for t in tok.get_added_tokens_decoder().values()
            if t.content.startswith("<|reserved_")
        )
    else:
        tok = train_tokenizer(corpus.text, cfg.tokenizer_vocab_size)
        n_bpe = tok.get_vocab_size(with_added_tokens=True)
        model_vocab = resolve_model_vocab(n_bpe, cfg.vocab_size)
        pad_tokenizer(tok, model_vocab)
    ids = [*tok.encode(corpus.text).ids, eot_id(tok)]
    data = split_tokens(ids, cfg.block_size, cfg.val_fraction, corpus.path)
    log.line(
        f"tokenizer: byte-level BPE {n_bpe} tokens (+{model_vocab - n_bpe} reserved "
        f"padding) -> model vocab {model_vocab} | {len(ids):,} tokens "
        f"({data.train.numel():,} train / {data.val.numel():,} val) "
        f"in {time.monotonic() - t_tok:.1f}s"
    )

    try:
        return _train(
            opts,
            cfg,
            rt,
            device,
            state,
            tok,
            model_vocab,
            data,
            corpus,
            run_dir,
            ckpt_path,
            log,
            prom,
            env,
            t_start,
        )
    except TrainingError:
        raise
    except Exception as exc:
        if is_oom(exc):
            if device.type == "cuda":
                torch.cuda.empty_cache()
            raise oom_error(cfg, device) from None
        raise


def _train(
    opts: RunOptions,
    cfg: TrainConfig,
    rt: Runtime,
    device: torch.device,
    state: dict[str, Any] | None,
    tok: Any,
    model_vocab: int,
    data: TokenData,
    corpus: Corpus,
    run_dir: Path,
    ckpt_path: Path,
    log: RunLog,
    prom: PromWriter | None,
    env: dict[str, Any],
    t_start: float,
) -> RunResult:
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    gcfg = gpt_config(cfg, model_vocab)
    model = GPT(gcfg).to(device)
    optimizer = build_optimizer(model, cfg, rt)
    start_step = 0
    device_types: set[str] = set()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        checkpoint.restore_rng(state.get("rng", {}))
        start_step = int(state["step"])
        device_types = set(state.get("device_types", []))
    n_params = model.num_params()
    fpt = flops_per_token(gcfg, n_params)
    peak = peak_flops(device.type, env.get("gpu_name"), cfg.peak_flops)
    log.line(
        f"model: {n_params / 1e6:.2f} M params (without position embeddings) | "
        f"{cfg.n_layer} layers, {cfg.n_embd} wide, {cfg.n_head} heads, ctx "
        f"{cfg.block_size}, vocab {model_vocab} | {fpt / 1e6:.1f} MFLOP/token | peak "
        f"{'n/a (MFU blank)' if peak is None else f'{peak / 1e12:.0f} TFLOP/s'}"
    )
    log.line(
        f"schedule: {cfg.max_steps} steps x {cfg.tokens_per_step:,} tokens (batch "
        f"{cfg.batch_size} x ctx {cfg.block_size} x accum {cfg.grad_accum_steps}) | lr "
        f"{cfg.learning_rate:g} cosine, warmup {cfg.warmup_steps}, min x{cfg.min_lr_ratio:g} "
        f"| seed {cfg.seed}" + (f" | resuming after step {start_step}" if state else "")
    )

    train_model: Any = model
    if rt.compile:
        log.line("compiling the model with torch.compile (first steps are slow) ...")
        train_model = torch.compile(model)

    def batch_fn(step0: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = batch_generator(cfg.seed, 0, step0, micro)
        return get_batch(data.train, cfg.batch_size, cfg.block_size, g, device)

    def val_batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = batch_generator(cfg.seed, 1, 0, i)
        return get_batch(data.val, cfg.batch_size, cfg.block_size, g, device)

    def save(step: int) -> None:
        types = sorted(device_types | {device.type}) if step > start_step else sorted(device_types)
        checkpoint.save_checkpoint(
            {
                "format": 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "config": cfg.to_dict(),
                "step": step,
                "rng": checkpoint.rng_state(),
                "tokenizer_json": tok.to_str(),
                "corpus": {
                    "path": str(corpus.path),
                    "sha256": corpus.sha256,
                    "pinned": corpus.pinned,
                },
                "device_types": types,
                "torch_version": str(torch.__version__),
            },
            ckpt_path,
        )

    csv_log = CsvLog(run_dir / CSV_NAME, keep_upto_step=start_step if state else None)
    losses: list[float] = []
    last_tps: float | None = None
    last_mfu: float | None = None
    step = start_step
    saved_step = start_step if state else -1
    window_t = 0.0
    window_n = 0
    reason_incomplete: str | None = None
    t_loop = time.monotonic()
    model.train()
    # SIGTERM / SIGINT during training: finish the step, checkpoint, exit 130.
    stop = _StopFlag()
    old_handlers = _install_signal_handlers(stop)
    try:
        while step < cfg.max_steps:
            t0 = time.monotonic()
            loss, lr = train_step(train_model, optimizer, cfg, rt, step, batch_fn)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = max(time.monotonic() - t0, 1e-9)
            step += 1
            device_types.add(device.type)
            losses.append(loss)
            tps = cfg.tokens_per_step / dt
            step_mfu = mfu(fpt, tps, peak)
            elapsed = time.monotonic() - t_start
            csv_log.write(step, loss, lr, tps, step_mfu, elapsed)
            window_t += dt
            window_n += 1
            if step % cfg.log_interval == 0 or step == cfg.max_steps or step == start_step + 1:
                avg_dt = window_t / window_n
                last_tps = cfg.tokens_per_step / avg_dt
                last_mfu = mfu(fpt, last_tps, peak)
                eta = avg_dt * (cfg.max_steps - step)
                mfu_txt = "-" if last_mfu is None else f"{last_mfu:.1%}"
                log.line(
                    f"step {step:>5}/{cfg.max_steps} | loss {loss:.4f} | lr {lr:.2e} | "
                    f"{last_tps:,.0f} tok/s | mfu {mfu_txt} | elapsed {elapsed:.1f}s | "
                    f"eta {_fmt_eta(eta)}"
                )
                if prom is not None:
                    _safe_prom(
                        prom,
                        log,
                        step=step,
                        total_steps=cfg.max_steps,
                        loss=loss,
                        tokens_per_s=last_tps,
                        mfu_value=last_mfu,
                        eta_s=eta,
                        status="running",
                    )
                window_t, window_n = 0.0, 0
            if cfg.eval_interval and step % cfg.eval_interval == 0 and step < cfg.max_steps:
                val = estimate_loss(model, rt, cfg.eval_iters, val_batch)
                log.line(f"step {step:>5}/{cfg.max_steps} | val loss {val:.4f}")
            if cfg.ckpt_interval and step % cfg.ckpt_interval == 0 and step < cfg.max_steps:
                save(step)
                saved_step = step
                log.line(f"checkpoint: {ckpt_path} (step {step})")
            if stop.signal is not None:
                if saved_step != step:
                    save(step)
                log.line(
                    f"interrupted by signal {stop.signal} at step {step}; checkpoint: "
                    f"{ckpt_path}; rerun with --resume to continue"
                )
                raise Interrupted(step, ckpt_path)
            if opts.stop_after is not None and step >= opts.stop_after:
                reason_incomplete = f"stopped after step {step} (--stop-after)"
                break
            if opts.time_limit_s is not None and time.monotonic() - t_start > opts.time_limit_s:
                reason_incomplete = f"time limit {opts.time_limit_s:g}s reached at step {step}"
                break
    finally:
        _restore_signal_handlers(old_handlers)
        csv_log.close()

    train_s = time.monotonic() - t_loop
    completed = step >= cfg.max_steps
    if saved_step != step:
        save(step)
    log.line(f"checkpoint: {ckpt_path} (step {step})")
    if reason_incomplete:
        log.line(f"note: {reason_incomplete}; rerun with --resume to finish")
    val_loss = estimate_loss(model, rt, cfg.eval_iters, val_batch)
    first = f"{losses[0]:.4f}" if losses else "-"
    last = f"{losses[-1]:.4f}" if losses else "-"
    log.line(
        f"loss: first {first} -> last {last} | val loss {val_loss:.4f} | "
        f"{len(losses)} steps in {train_s:.1f}s"
    )

    result = RunResult(
        run_dir=run_dir,
        run_kind=INCOMPLETE,
        step=step,
        max_steps=cfg.max_steps,
        losses=losses,
        val_loss=val_loss,
        tokens_per_s=last_tps,
        mfu=last_mfu,
        checkpoint=ckpt_path,
    )
    if opts.export:
        _export_and_sample(model, tok, cfg, data, run_dir, log, result)

    kind, warning = decide_run_kind(device_types, completed, opts.run_kind)
    if warning:
        log.line(f"warning: {warning}")
    write_run_kind(run_dir, kind)
    result.run_kind = kind
    log.line(f"RUN_KIND: {kind}")
    if prom is not None:
        _safe_prom(
            prom,
            log,
            step=step,
            total_steps=cfg.max_steps,
            loss=losses[-1] if losses else None,
            tokens_per_s=last_tps,
            mfu_value=last_mfu,
            eta_s=0.0 if completed else None,
            status="completed" if completed else "incomplete",
        )
    log.line(f"outputs: {run_dir} | total {time.monotonic() - t_start:.1f}s")
    return result


def _safe_prom(prom: PromWriter, log: RunLog, **kwargs: Any) -> None:
    try:
        prom.write(**kwargs)
    except OSError as exc:  # metrics are best effort once the run is going
        log.line(f"warning: cannot write {prom.path}: {exc.strerror or exc}")


def _export_and_sample(
    model: GPT,
    tok: Any,
    cfg: TrainConfig,
    data: TokenData,
    run_dir: Path,
    log: RunLog,
    result: RunResult,
) -> None:
    from training.export import SamplingDefaults, export_hf, load_hf, max_logit_diff, sample_text

    export_dir = run_dir / EXPORT_NAME
    sampling = SamplingDefaults(
        temperature=cfg.sample_temperature, top_k=cfg.sample_top_k, max_new_tokens=cfg.sample_tokens
    )
    export_hf(model, tok, export_dir, sampling)
    hf_model, hf_tok = load_hf(export_dir)
    probe = data.val[: min(64, cfg.block_size)]
    diff = max_logit_diff(model, hf_model, probe)
    if diff > LOGIT_ATOL:
        raise RuntimeError(f"export check failed: max |logits diff| {diff:.3g} > {LOGIT_ATOL}")
    log.line(f"hf export: {export_dir} (loads in transformers; max |logits diff| {diff:.2e})")
    text = sample_text(
        hf_model,
        hf_tok,
        cfg.sample_prompt,
        cfg.sample_tokens,
        cfg.sample_temperature,
        cfg.sample_top_k,
        cfg.seed,
    )
    (run_dir / SAMPLE_NAME).write_text(
        f"prompt: {cfg.sample_prompt}\n"
        f"settings: max_new_tokens={cfg.sample_tokens} temperature={cfg.sample_temperature} "
        f"top_k={cfg.sample_top_k} seed={cfg.seed} (transformers generate on {EXPORT_NAME}/)\n"
        f"---\n{text}\n",
        encoding="utf-8",
    )
    log.line(f"sample ({SAMPLE_NAME}): {text!r}")
    result.sample = text
    result.export_dir = export_dir
    result.logit_diff = diff


# ---------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a mini GPT-2 on the shipped corpus and export it for vLLM.",
        epilog="Exit codes: 0 ok (see RUN_KIND), 1 internal error, 2 error with a fix "
        "printed, 130 interrupted (checkpoint kept; rerun with --resume).",
    )
    p.add_argument(
        "--config", default="tiny", choices=sorted(CONFIGS), help="named config (default: tiny)"
    )
    p.add_argument(
        "--out", required=True, type=Path, help=f"output directory; files go to OUT/{RUN_DIR_NAME}/"
    )
    p.add_argument("--steps", type=int, help="optimizer steps (config max_steps)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps (default: auto)")
    p.add_argument(
        "--require-cuda", action="store_true", help="fail with exit 2 unless CUDA is available"
    )
    p.add_argument(
        "--corpus",
        type=Path,
        help="UTF-8 text to train on instead of the shipped corpus (sha256 recorded, not enforced)",
    )
    p.add_argument(
        "--textfile-dir",
        type=Path,
        help="write llmhost_training.prom here (node_exporter textfile collector)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/.../mini_gpt2_checkpoint.pt if it exists",
    )
    p.add_argument("--batch-size", type=int, help="micro-batch size (sequences)")
    p.add_argument("--grad-accum", type=int, help="gradient accumulation steps")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--no-compile", action="store_true", help="disable torch.compile")
    p.add_argument("--compile", action="store_true", help="force torch.compile (also on CPU)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set n_layer=2 (repeatable)",
    )
    p.add_argument(
        "--stop-after",
        type=int,
        metavar="STEP",
        help="stop after this step (RUN_KIND incomplete; continue with --resume)",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds (RUN_KIND incomplete)",
    )
    p.add_argument(
        "--run-kind",
        choices=("auto", *RUN_KINDS),
        default="auto",
        help="expected RUN_KIND; a cross-check only: the label is always derived "
        "from the device and completion (a CPU run is never cuda_acceptance)",
    )
    p.add_argument("--no-export", action="store_true", help="skip hf_export/ and sample.txt")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def options_from_args(args: argparse.Namespace) -> RunOptions:
    overrides = parse_overrides(list(args.overrides))
    flag_map = {
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "grad_accum_steps": args.grad_accum,
        "learning_rate": args.lr,
        "seed": args.seed,
    }
    for key, value in flag_map.items():
        if value is not None:
            overrides[key] = str(value)
    if args.no_compile and args.compile:
        raise ConfigError("--compile and --no-compile both given", "pass only one")
    if args.no_compile:
        overrides["compile"] = "false"
    elif args.compile:
        overrides["compile"] = "true"
    return RunOptions(
        config_name=args.config,
        overrides=overrides,
        out=args.out,
        device=args.device,
        require_cuda=args.require_cuda,
        corpus=args.corpus,
        textfile_dir=args.textfile_dir,
        resume=args.resume,
        stop_after=args.stop_after,
        time_limit_s=args.time_limit,
        run_kind=None if args.run_kind == "auto" else args.run_kind,
        export=not args.no_export,
    )


def _print_error(message: str, fix: str | None) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    if fix:
        print(f"fix: {fix}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(options_from_args(args))
        return EXIT_OK
    except TrainingError as exc:
        if args.debug:
            raise
        _print_error(exc.message, exc.fix)
        return EXIT_USER_ERROR
    except Interrupted as exc:
        _print_error(
            f"interrupted at step {exc.step}; checkpoint {exc.ckpt} kept",
            "rerun the same command with --resume to continue",
        )
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _print_error("interrupted", "rerun with --resume to continue from the last checkpoint")
        return EXIT_INTERRUPTED
    except OSError as exc:
        if args.debug:
            raise
        where = exc.filename or "an output file"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _print_error(
                f"disk full while writing {where}",
                "free space or point --out at a larger disk, then rerun with --resume",
            )
        else:
            _print_error(
                f"cannot write {where}: {exc.strerror or exc}",
                "check that --out and --textfile-dir are writable directories",
            )
        return EXIT_USER_ERROR
    except Exception as exc:  # last-resort handler: no traceback wall
        if args.debug:
            raise
        _print_error(
            f"internal error: {type(exc).__name__}: {exc}",
            "rerun with --debug for the traceback and report it",
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
