"""Model <-> Hugging Face GPT-2 converter and the exported folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from training.data import DEFAULT_CORPUS_PATH
from training.export import (
    CONV1D_SUFFIXES,
    export_hf,
    from_hf_state_dict,
    to_hf_state_dict,
)
from training.model import GPT, GPTConfig
from training.tokenizer import EOT, pad_tokenizer, resolve_model_vocab, train_tokenizer


def _random_model(vocab: int) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=48, vocab_size=vocab))
    with torch.no_grad():  # non-trivial biases / LayerNorm so a wrong mapping shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def test_converter_transposes_conv1d_and_drops_tied_head() -> None:
    model = _random_model(vocab=64)
    ours = model.state_dict()
    hf = to_hf_state_dict(ours)
    assert "lm_head.weight" not in hf
    w = hf["transformer.h.0.attn.c_attn.weight"]
    assert w.shape == (32, 96)  # HF Conv1D: [in, out]
    assert hf["transformer.h.0.mlp.c_fc.weight"].shape == (32, 128)
    assert hf["transformer.h.0.mlp.c_proj.weight"].shape == (128, 32)
    assert torch.equal(w, ours["transformer.h.0.attn.c_attn.weight"].t())
    back = from_hf_state_dict(hf)
    assert set(back) == set(ours)
    for key, value in ours.items():
        assert torch.equal(back[key], value), key
    assert all(any(k.endswith(s) for k in hf) for s in CONV1D_SUFFIXES)


def test_causal_attention_ignores_future_tokens() -> None:
    model = _random_model(vocab=64)
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = torch.tensor([[1, 2, 3, 9, 9, 9]])
    with torch.no_grad():
        la, _ = model(a)
        lb, _ = model(b)
    assert torch.allclose(la[:, :3], lb[:, :3], atol=1e-6)
    assert not torch.allclose(la[:, 3:], lb[:, 3:])


def test_export_loads_in_transformers_logits_match_and_generates(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = DEFAULT_CORPUS_PATH.read_text(encoding="utf-8")[:60_000]
    tok = train_tokenizer(text, 300)  # 300 tokens -> model vocab padded to 320
    n_bpe = tok.get_vocab_size()
    vocab = resolve_model_vocab(n_bpe, 0)
    assert vocab % 64 == 0 and vocab > n_bpe
    assert pad_tokenizer(tok, vocab) == vocab - n_bpe
    model = _random_model(vocab)
    out = export_hf(model, tok, tmp_path / "hf")

    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "generation_config.json",
    ):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["GPT2LMHeadModel"]
    assert cfg["model_type"] == "gpt2"
    assert cfg["vocab_size"] == vocab
    assert cfg["n_positions"] == 48
    assert cfg["activation_function"] == "gelu_new"
    assert cfg["tie_word_embeddings"] is True
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.token_to_id(EOT) == 0

    hf_tok = AutoTokenizer.from_pretrained(str(out))
    loaded: Any = AutoModelForCausalLM.from_pretrained(
        str(out), dtype=torch.float32, output_loading_info=True
    )
    hf_model, info = loaded
    hf_model.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert len(hf_tok) == vocab  # padding ids decode (as reserved special tokens)
    assert hf_tok.eos_token == EOT

    ids = torch.tensor([tok.encode(text[:400]).ids[:40]])
    with torch.no_grad():
        ours, _ = model(ids)
        theirs = hf_model(input_ids=ids).logits
    assert ours.shape == theirs.shape == (1, 40, vocab)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    assert hf_tok("A hacker is")["input_ids"] == tok.encode("A hacker is").ids

    torch.manual_seed(0)
    enc = hf_tok("A hacker is", return_tensors="pt")
    gen_ids = hf_model.generate(**enc, max_new_tokens=5, do_sample=True, top_k=20)
    assert gen_ids.shape[1] == enc["input_ids"].shape[1] + 5
    text_out = hf_tok.decode(gen_ids[0], skip_special_tokens=True)
    assert isinstance(text_out, str) and text_out.startswith("A hacker is")
    assert hf_tok.decode([vocab - 1], skip_special_tokens=True) == ""

    chat = hf_tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert chat == "user: hi\nassistant:"
    assert oct((out / "model.safetensors").stat().st_mode & 0o777) == "0o644"
