"""Corpus loading (sha256-pinned default corpus), tokenisation and batching."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from training.errors import CorpusError

DATA_DIR = Path(__file__).resolve().parent / "data"
# The Jargon File 4.4.7 (public domain), see training/data/README.md.
DEFAULT_CORPUS_PATH = DATA_DIR / "jargon.txt"
DEFAULT_CORPUS_SHA256 = "40dfb4b98191a670a09a183d5798d50f243d23fdbd1495dcc0aca2ce5895ba97"


@dataclass(frozen=True)
class Corpus:
    path: Path
    text: str
    sha256: str
    pinned: bool  # True for the shipped corpus, whose sha256 is enforced
    n_bytes: int


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_corpus(path: str | Path | None = None) -> Corpus:
    """Read the corpus. ``None`` = the shipped corpus, verified against its pinned sha256.

    A user-given path is read as UTF-8; its sha256 is recorded, not enforced.
    """
    pinned = path is None
    corpus_path = Path(DEFAULT_CORPUS_PATH if path is None else path).expanduser()
    if not corpus_path.is_file():
        fix = (
            "restore it with: git checkout -- training/data/jargon.txt"
            if pinned
            else "pass an existing UTF-8 text file with --corpus PATH, or drop --corpus "
            "to use the shipped corpus"
        )
        raise CorpusError(f"corpus not found: {corpus_path}", fix)
    try:
        raw = corpus_path.read_bytes()
    except OSError as exc:
        raise CorpusError(
            f"cannot read corpus {corpus_path}: {exc.strerror or exc}",
            "check the file's permissions",
        ) from None
    digest = sha256_bytes(raw)
    if pinned and digest != DEFAULT_CORPUS_SHA256:
        raise CorpusError(
            f"corpus {corpus_path} has sha256 {digest}, expected {DEFAULT_CORPUS_SHA256} "
            "(pinned in training/data.py)",
            "restore the shipped file with: git checkout -- training/data/jargon.txt "
            "(or train on your own text with --corpus PATH)",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"corpus {corpus_path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
            "convert it, e.g. iconv -t UTF-8",
        ) from None
    if not text.strip():
        raise CorpusError(
            f"corpus {corpus_path} is empty",
            "pass a text file with at least a few KB of text via --corpus",
        )
    return Corpus(path=corpus_path, text=text, sha256=digest, pinned=pinned, n_bytes=len(raw))


@dataclass(frozen=True)
class TokenData:
    train: torch.Tensor  # 1-D int64
    val: torch.Tensor


def min_tokens(block_size: int, val_fraction: float) -> int:
    """Smallest token count whose train and val splits both hold one full window."""
    need_val = block_size + 2
    total = int(need_val / val_fraction) + 1
    return max(total, 2 * need_val)


def split_tokens(ids: list[int], block_size: int, val_fraction: float, corpus: Path) -> TokenData:
    """Split into train / val; raise :class:`CorpusError` if a window does not fit."""
    need = min_tokens(block_size, val_fraction)
    n = len(ids)
    n_val = max(int(n * val_fraction), 0)
    n_train = n - n_val
    if n < need or n_train < block_size + 2 or n_val < block_size + 2:
        approx_kb = max(1, need * 4 // 1024)  # ~4 bytes per token for English BPE
        raise CorpusError(
            f"corpus {corpus} is too small for context length block_size={block_size}: "
            f"{n} tokens, need at least {need} (train and the {val_fraction:.0%} val split "
            f"must each hold one window of {block_size + 1} tokens)",
            f"use a larger corpus (roughly {approx_kb} KB of text or more) or lower the "
            f"context with --set block_size={max(8, block_size // 4)}",
        )
    data = torch.tensor(ids, dtype=torch.long)
    return TokenData(train=data[:n_train], val=data[n_train:])


def batch_generator(seed: int, stream: int, step: int, micro: int) -> torch.Generator:
    """A generator that depends only on (seed, stream, step, micro): resume-exact batches."""
    g = torch.Generator()
    key = (((seed * 4 + stream) * 1_000_003 + step) * 1_009 + micro) % (2**62)
    g.manual_seed(key)
    return g


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: inputs ``x`` and next-token targets ``y``, both (B, T)."""
    high = data.numel() - block_size - 1
    ix = torch.randint(high + 1, (batch_size,), generator=generator)
    x = torch.stack([data[i : i + block_size] for i in ix.tolist()])
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix.tolist()])
    if device.type == "cuda":
        return (
            x.pin_memory().to(device, non_blocking=True),
            y.pin_memory().to(device, non_blocking=True),
        )
    return x.to(device), y.to(device)
