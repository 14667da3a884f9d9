"""Named training configs (``tiny``, ``gpt2-124m``) and ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from training.errors import ConfigError

# Fields that fix the shape of the model / tokenizer: they cannot change on --resume.
ARCH_KEYS = frozenset(
    {"n_layer", "n_head", "n_embd", "block_size", "vocab_size", "tokenizer_vocab_size"}
)


@dataclass
class TrainConfig:
    """Everything a run needs. Every field can be overridden with ``--set key=value``."""

    name: str = "tiny"
    # --- model (GPT-2: decoder-only, learned positions, pre-LN, tied lm head) ---
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128
    # Model vocab (rows of wte). 0 = tokenizer size rounded up to a multiple of 64.
    vocab_size: int = 0
    # Target size of the byte-level BPE trained on the corpus.
    tokenizer_vocab_size: int = 2048
    dropout: float = 0.0
    # --- optimisation ---
    batch_size: int = 8  # micro-batch (sequences per forward pass)
    grad_accum_steps: int = 1
    max_steps: int = 200
    learning_rate: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decays to learning_rate * min_lr_ratio
    warmup_steps: int = 20
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    seed: int = 1337
    val_fraction: float = 0.1
    # --- bookkeeping ---
    log_interval: int = 10  # terminal + Prometheus every N steps (CSV gets every step)
    eval_interval: int = 0  # 0 = evaluate the val loss only at the end
    eval_iters: int = 10
    ckpt_interval: int = 100  # 0 = checkpoint only at the end
    # --- runtime ---
    compile: str = "auto"  # auto (= on CUDA only) | true | false
    dtype: str = "auto"  # auto (= bf16 autocast on CUDA, fp32 elsewhere) | float32 | bfloat16
    peak_flops: float = 0.0  # 0 = look the device up in the peak table (MFU)
    # --- sample written to sample.txt ---
    sample_prompt: str = "A hacker is"
    sample_tokens: int = 60
    sample_temperature: float = 0.8
    sample_top_k: int = 40

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.block_size * self.grad_accum_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise :class:`ConfigError` for settings that cannot work."""
        positive = (
            "n_layer",
            "n_head",
            "n_embd",
            "block_size",
            "tokenizer_vocab_size",
            "batch_size",
            "grad_accum_steps",
            "max_steps",
            "log_interval",
            "eval_iters",
            "sample_tokens",
        )
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigError(
                    f"{key} must be > 0 (got {getattr(self, key)})",
                    f"pass --set {key}=<positive integer>",
                )
        if self.n_embd % self.n_head != 0:
            raise ConfigError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})",
                "choose n_embd as a multiple of n_head, e.g. --set n_embd=128 --set n_head=4",
            )
        if self.tokenizer_vocab_size < 257:
            raise ConfigError(
                f"tokenizer_vocab_size must be at least 257 (256 bytes + <|endoftext|>), "
                f"got {self.tokenizer_vocab_size}",
                "pass --set tokenizer_vocab_size=2048",
            )
        if self.vocab_size < 0:
            raise ConfigError("vocab_size must be >= 0 (0 = automatic)", "--set vocab_size=0")
        if not 0.0 < self.val_fraction < 0.5:
            raise ConfigError(
                f"val_fraction must be in (0, 0.5), got {self.val_fraction}",
                "--set val_fraction=0.1",
            )
        if self.compile not in ("auto", "true", "false"):
            raise ConfigError(
                f"compile must be auto, true or false, got {self.compile!r}",
                "--set compile=auto (or --no-compile)",
            )
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(
                f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}", "--set dtype=auto"
            )
        if self.learning_rate <= 0:
            raise ConfigError("learning_rate must be > 0", "--set learning_rate=6e-4")
        if self.warmup_steps < 0 or self.ckpt_interval < 0 or self.eval_interval < 0:
            raise ConfigError(
                "warmup_steps, ckpt_interval and eval_interval must be >= 0", "use 0 to disable"
            )


CONFIGS: dict[str, TrainConfig] = {
    # CPU smoke test: ~1.1 M parameters, 1,024 tokens/step; 200 steps take ~15-60 s on
    # 2 cores (loss ~7.6 -> ~5.9). --batch-size 16 gives a better curve at twice the time.
    "tiny": TrainConfig(name="tiny"),
    # GPT-2 small (124 M). Vocab padded to 50304 (= 786 * 64) for fast matmuls.
    "gpt2-124m": TrainConfig(
        name="gpt2-124m",
        n_layer=12,
        n_head=12,
        n_embd=768,
        block_size=1024,
        vocab_size=50304,
        tokenizer_vocab_size=50257,
        batch_size=16,
        grad_accum_steps=4,
        max_steps=500,
        learning_rate=6e-4,
        warmup_steps=50,
        log_interval=10,
        eval_interval=250,
        eval_iters=20,
        ckpt_interval=250,
        sample_tokens=100,
    ),
}


def get_config(name: str) -> TrainConfig:
    """Return a fresh copy of the named config."""
    try:
        return dataclasses.replace(CONFIGS[name])
    except KeyError:
        raise ConfigError(
            f"unknown config {name!r}",
            f"use one of: {', '.join(sorted(CONFIGS))}",
        ) from None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(key: str, raw: str, current: Any) -> Any:
    try:
        if isinstance(current, bool):
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(raw)
        if isinstance(current, int):
            return int(float(raw)) if raw.strip().lower().count("e") else int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError:
        kind = type(current).__name__
        raise ConfigError(
            f"--set {key}={raw}: not a valid {kind}", f"give {key} a {kind} value"
        ) from None
    if key in ("compile",):
        low = raw.strip().lower()
        if low in _TRUE:
            return "true"
        if low in _FALSE:
            return "false"
        return low
    return raw


def parse_overrides(items: list[str]) -> dict[str, str]:
    """Turn ``["a=1", "b=x"]`` into ``{"a": "1", "b": "x"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(
                f"--set {item!r}: expected key=value", "write overrides as --set n_layer=2"
            )
        out[key] = value
    return out


def apply_overrides(cfg: TrainConfig, overrides: dict[str, str]) -> TrainConfig:
    """Return a copy of *cfg* with string overrides coerced to each field's type."""
    known = {f.name: f for f in fields(cfg)}
    changes: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in known:
            raise ConfigError(
                f"unknown config key {key!r}",
                f"known keys: {', '.join(sorted(known))}",
            )
        changes[key] = _coerce(key, raw, getattr(cfg, key))
    return dataclasses.replace(cfg, **changes)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved with :meth:`TrainConfig.to_dict` (unknown keys ignored)."""
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in data.items() if k in known})
