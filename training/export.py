"""Export our GPT module to a Hugging Face GPT-2 folder (what vLLM serves).

Layout of the folder::

    config.json              GPT2LMHeadModel config (vocab_size = padded model vocab)
    model.safetensors        weights, fp32, lm_head omitted (tied to transformer.wte)
    tokenizer.json           byte-level BPE (+ reserved padding tokens), tokenizer_config.json
    chat_template.jinja      "role: content" lines, then "assistant:"
    generation_config.json   sampling defaults, eos = <|endoftext|>

The only layout difference between the two models is the Conv1D weights: HF's GPT-2
stores ``c_attn``, ``c_proj`` and ``c_fc`` weights as ``[in, out]`` while ``nn.Linear``
stores ``[out, in]``, so those are transposed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from training.model import GPT, GPTConfig
from training.tokenizer import EOT

CONV1D_SUFFIXES = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
)
TIED_KEY = "lm_head.weight"
COMPILE_PREFIX = "_orig_mod."

# Simple template so vLLM's /v1/chat/completions works: "user: hi\nassistant:".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] + ': ' + message['content'] + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}"
)


def to_hf_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> HF ``GPT2LMHeadModel`` state dict (fp32, CPU, contiguous)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key.removeprefix(COMPILE_PREFIX)
        if name == TIED_KEY:
            continue  # tied to transformer.wte.weight; HF re-ties on load
        tensor = value.detach().to("cpu", torch.float32)
        if name.endswith(CONV1D_SUFFIXES):
            tensor = tensor.t()
        out[name] = tensor.contiguous()
    return out


def from_hf_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`to_hf_state_dict` (ignores HF's non-parameter buffers)."""
    out: dict[str, torch.Tensor] = {}
    for name, value in state_dict.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        tensor = value.detach().to("cpu", torch.float32)
        if name.endswith(CONV1D_SUFFIXES):
            tensor = tensor.t()
        out[name] = tensor.contiguous()
    out[TIED_KEY] = out["transformer.wte.weight"]
    return out


def hf_config_kwargs(cfg: GPTConfig, eot_id: int) -> dict[str, Any]:
    return {
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": 4 * cfg.n_embd,
        "activation_function": "gelu_new",  # tanh approximation, as in our MLP
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "pad_token_id": eot_id,
        "architectures": ["GPT2LMHeadModel"],
        "dtype": "float32",  # the weights are stored in fp32; vLLM may serve them in bf16
    }


@dataclass(frozen=True)
class SamplingDefaults:
    temperature: float = 0.8
    top_k: int = 40
    max_new_tokens: int = 60


def export_hf(
    model: GPT,
    tokenizer: Tokenizer,
    out_dir: Path,
    sampling: SamplingDefaults | None = None,
) -> Path:
    """Write the Hugging Face folder; returns ``out_dir``."""
    from transformers import GenerationConfig, GPT2Config, PreTrainedTokenizerFast

    sampling = sampling or SamplingDefaults()
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    eot_id = tokenizer.token_to_id(EOT)
    if eot_id is None:
        raise ValueError(f"tokenizer has no {EOT}")
    if tokenizer.get_vocab_size(with_added_tokens=True) > cfg.vocab_size:
        raise ValueError("tokenizer is larger than the model vocab")

    hf_cfg = GPT2Config(**hf_config_kwargs(cfg, eot_id))
    hf_cfg.save_pretrained(out_dir)

    save_file(
        to_hf_state_dict(model.state_dict()),
        str(out_dir / "model.safetensors"),
        metadata={"format": "pt"},
    )

    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(tokenizer.to_str()),
        bos_token=EOT,
        eos_token=EOT,
        unk_token=EOT,
        pad_token=EOT,
        model_max_length=cfg.block_size,
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(out_dir)
    _set_tokenizer_class(out_dir / "tokenizer_config.json")
    chat_file = out_dir / "chat_template.jinja"
    if not chat_file.exists():  # older transformers embed it in tokenizer_config.json
        chat_file.write_text(CHAT_TEMPLATE, encoding="utf-8")

    gen = GenerationConfig(
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        pad_token_id=eot_id,
        do_sample=True,
        temperature=sampling.temperature,
        top_k=sampling.top_k,
        max_new_tokens=sampling.max_new_tokens,
    )
    gen.save_pretrained(out_dir)
    for path in out_dir.iterdir():  # safetensors writes 0600; the server may be another user
        if path.is_file():
            path.chmod(0o644)
    return out_dir


def _set_tokenizer_class(path: Path) -> None:
    """Name the generic fast tokenizer class: loads in transformers 4.x and 5.x alike."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_hf(out_dir: Path) -> tuple[Any, Any]:
    """Load the export with transformers' Auto classes (CPU, fp32, eval mode)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    hf_model = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32)
    hf_model.eval()
    return hf_model, tok


@torch.no_grad()
def max_logit_diff(model: GPT, hf_model: Any, ids: torch.Tensor) -> float:
    """Max |logits(ours) - logits(HF)| for the same input ids (both on CPU, fp32)."""
    ours = GPT(model.config)
    ours.load_state_dict(
        {
            k.removeprefix(COMPILE_PREFIX): v.detach().to("cpu", torch.float32)
            for k, v in model.state_dict().items()
        }
    )
    ours.eval()
    ids = ids.to("cpu").view(1, -1)
    logits_ours, _ = ours(ids)
    logits_hf = hf_model(input_ids=ids).logits
    return float((logits_ours - logits_hf.float()).abs().max())


@torch.no_grad()
def sample_text(
    hf_model: Any,
    hf_tok: Any,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    seed: int,
) -> str:
    """Generate from the exported model with ``transformers.generate`` (seeded)."""
    enc = hf_tok(prompt, return_tensors="pt")
    room = int(hf_model.config.n_positions) - int(enc["input_ids"].shape[1])
    torch.manual_seed(seed)
    out = hf_model.generate(
        **enc,
        max_new_tokens=max(1, min(max_new_tokens, room)),
        do_sample=True,
        temperature=temperature,
        top_k=top_k,
        pad_token_id=hf_tok.pad_token_id,
    )
    text: str = hf_tok.decode(out[0], skip_special_tokens=True)
    return text
