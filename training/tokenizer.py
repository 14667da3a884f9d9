"""Byte-level BPE trained offline on the corpus with the ``tokenizers`` library.

Vocab padding
-------------
The model's embedding matrix may have more rows than the trained BPE has tokens
(``vocab_size`` is rounded up to a multiple of 64, or fixed at 50304 for
``gpt2-124m``, which a small corpus can never fill). The gap is filled with reserved
special tokens ``<|reserved_N|>`` so that ``len(tokenizer) == config.vocab_size``:
every id the model (or vLLM) can emit decodes, and ``skip_special_tokens`` hides them.
They never occur in the training data, so training drives their logits down.
"""

from __future__ import annotations

from collections.abc import Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from training.errors import ConfigError

EOT = "<|endoftext|>"
RESERVED_FMT = "<|reserved_{}|>"
VOCAB_MULTIPLE = 64


def _chunks(text: str, size: int = 65536) -> Iterator[str]:
    """Yield pieces of ~size characters that end at line boundaries."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            nl = text.rfind("\n", start, end)
            if nl > start:
                end = nl + 1
        yield text[start:end]
        start = end


def train_tokenizer(text: str, vocab_size: int) -> Tokenizer:
    """Train a GPT-2 style byte-level BPE with ``<|endoftext|>`` as token 0.

    On a small corpus the result can be smaller than ``vocab_size`` (merges run out).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_chunks(text), trainer)
    return tok


def padded_vocab_size(n_tokens: int, multiple: int = VOCAB_MULTIPLE) -> int:
    return ((n_tokens + multiple - 1) // multiple) * multiple


def resolve_model_vocab(n_tokens: int, requested: int) -> int:
    """Model vocab: ``requested`` if set (must hold the tokenizer), else padded to 64."""
    if requested == 0:
        return padded_vocab_size(n_tokens)
    if requested < n_tokens:
        raise ConfigError(
            f"vocab_size={requested} is smaller than the trained tokenizer ({n_tokens} tokens)",
            f"use --set vocab_size=0 (automatic) or --set tokenizer_vocab_size={requested}",
        )
    return requested


def pad_tokenizer(tok: Tokenizer, model_vocab: int) -> int:
    """Add reserved special tokens until the tokenizer has ``model_vocab`` ids.

    Returns the number of reserved tokens added.
    """
    n = tok.get_vocab_size(with_added_tokens=True)
    extra = model_vocab - n
    if extra > 0:
        tok.add_special_tokens([RESERVED_FMT.format(i) for i in range(extra)])
    return max(extra, 0)


def eot_id(tok: Tokenizer) -> int:
    ident = tok.token_to_id(EOT)
    if ident is None:  # pragma: no cover - train_tokenizer always adds it
        raise ValueError(f"tokenizer has no {EOT} token")
    return int(ident)


def load_tokenizer_json(data: str) -> Tokenizer:
    return Tokenizer.from_str(data)
