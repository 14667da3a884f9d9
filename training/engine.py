"""Device / precision setup, optimizer, LR schedule and one optimizer step.

Shared by ``training.train`` and ``scripts/bench_train.py``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from training.config import TrainConfig
from training.errors import ConfigError, CudaRequiredError, GpuOutOfMemoryError
from training.model import GPT, GPTConfig

BatchFn = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


def select_device(requested: str, require_cuda: bool) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU. Raises :class:`CudaRequiredError`."""
    req = requested.strip().lower()
    if req not in ("auto", "cpu", "cuda", "mps") and not req.startswith("cuda:"):
        raise ConfigError(f"unknown device {requested!r}", "use --device auto|cpu|cuda|mps")
    if require_cuda and req in ("cpu", "mps"):
        raise ConfigError(
            f"--require-cuda contradicts --device {req}",
            "drop one of them (--device auto --require-cuda for the GPU run)",
        )
    if require_cuda or req.startswith("cuda"):
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                why = f"torch {torch.__version__} is a CPU-only build"
                fix = (
                    "install the CUDA build of torch=="
                    + torch.__version__.split("+")[0]
                    + " on the GPU host and check nvidia-smi; for a CPU smoke run drop "
                    "--require-cuda / use --device cpu"
                )
            else:
                why = (
                    f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU "
                    "(driver missing, CUDA_VISIBLE_DEVICES empty, or no GPU passed through)"
                )
                fix = (
                    "check nvidia-smi and the NVIDIA driver on this host; for a CPU smoke "
                    "run drop --require-cuda / use --device cpu"
                )
            raise CudaRequiredError(f"CUDA is required but not available: {why}", fix)
        return torch.device("cuda" if req in ("auto", "cuda") else req)
    if req == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if req == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("--device mps but MPS is not available", "use --device auto")
    return torch.device(req)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None = plain fp32
    compile: bool
    fused_adamw: bool

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @property
    def precision(self) -> str:
        return "fp32" if self.amp_dtype is None else "bf16 autocast"


def make_runtime(cfg: TrainConfig, device: torch.device) -> Runtime:
    """CUDA: TF32 on, bf16 autocast, fused AdamW, torch.compile. CPU: fp32, no compile."""
    cuda = device.type == "cuda"
    if cuda:
        torch.set_float32_matmul_precision("high")  # TF32 matmuls
        torch.backends.cudnn.allow_tf32 = True
    amp: torch.dtype | None
    if cfg.dtype == "float32":
        amp = None
    elif cfg.dtype == "bfloat16":
        if cuda and not torch.cuda.is_bf16_supported():
            raise ConfigError("this GPU does not support bfloat16", "use --set dtype=float32")
        amp = torch.bfloat16
    else:  # auto
        amp = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    use_compile = cuda if cfg.compile == "auto" else cfg.compile == "true"
    return Runtime(device=device, amp_dtype=amp, compile=use_compile, fused_adamw=cuda)


def gpt_config(cfg: TrainConfig, vocab_size: int) -> GPTConfig:
    return GPTConfig(
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        block_size=cfg.block_size,
        vocab_size=vocab_size,
        dropout=cfg.dropout,
    )


def build_optimizer(model: nn.Module, cfg: TrainConfig, rt: Runtime) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only; fused kernel on CUDA."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    extra: dict[str, Any] = {"fused": True} if rt.fused_adamw else {}
    return torch.optim.AdamW(
        groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), eps=1e-8, **extra
    )


def lr_at(step0: int, cfg: TrainConfig) -> float:
    """Linear warmup then cosine decay to ``learning_rate * min_lr_ratio`` (0-based step)."""
    lr = cfg.learning_rate
    min_lr = lr * cfg.min_lr_ratio
    if cfg.warmup_steps > 0 and step0 < cfg.warmup_steps:
        return lr * (step0 + 1) / cfg.warmup_steps
    if step0 >= cfg.max_steps:
        return min_lr
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    ratio = min(1.0, (step0 - cfg.warmup_steps) / span)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    rt: Runtime,
    step0: int,
    batch_fn: BatchFn,
) -> tuple[float, float]:
    """One optimizer step with gradient accumulation; returns ``(mean loss, lr)``."""
    lr = lr_at(step0, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    total = torch.zeros((), device=rt.device)
    for micro in range(cfg.grad_accum_steps):
        x, y = batch_fn(step0, micro)
        with rt.autocast():
            _, loss = model(x, y)
        if loss is None:
            raise RuntimeError("model returned no loss")
        loss = loss / cfg.grad_accum_steps
        loss.backward()
        total += loss.detach()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(total.item()), lr


@torch.no_grad()
def estimate_loss(
    model: GPT,
    rt: Runtime,
    iters: int,
    batch_fn: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
) -> float:
    was_training = model.training
    model.eval()
    losses: list[float] = []
    for i in range(iters):
        x, y = batch_fn(i)
        with rt.autocast():
            _, loss = model(x, y)
        if loss is None:
            raise RuntimeError("model returned no loss")
        losses.append(float(loss.item()))
    model.train(was_training)
    return sum(losses) / len(losses)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def is_oom(exc: BaseException) -> bool:
    """True for torch's OOM error, also when wrapped (e.g. by torch.compile)."""
    for err in _chain(exc):
        if isinstance(err, torch.OutOfMemoryError):
            return True
        text = str(err).lower()
        if "cuda out of memory" in text or "can't allocate memory" in text:
            return True
    return False


def oom_error(cfg: TrainConfig, device: torch.device) -> GpuOutOfMemoryError:
    where = "GPU" if device.type == "cuda" else f"{device.type} host"
    what = (
        f"out of {where} memory at micro-batch size batch_size={cfg.batch_size} "
        f"(block_size={cfg.block_size}, config {cfg.name})"
    )
    if cfg.batch_size > 1:
        half = max(1, cfg.batch_size // 2)
        accum = cfg.grad_accum_steps * max(1, cfg.batch_size // half)
        fix = (
            f"lower the batch size, e.g. --batch-size {half} --grad-accum {accum} "
            "(same tokens per step), then rerun (add --resume to keep progress)"
        )
    else:
        fix = (
            "batch_size is already 1: lower the context (--set block_size=...) or use a "
            "smaller config"
        )
    return GpuOutOfMemoryError(what, fix)
