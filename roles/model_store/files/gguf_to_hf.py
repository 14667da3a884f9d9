#!/usr/bin/env python3
"""GGUF -> a Hugging Face model folder that vLLM serves: config.json, model.safetensors
(dequantized to --dtype), the tokenizer files and the chat template.

    gguf_to_hf.py MODEL.gguf OUT_DIR [--dtype float32|bfloat16|float16]

Run by llmhost.core.model_package on the control node, in its own interpreter. It uses
transformers' own GGUF reader and tensor-name mapping (load_gguf_checkpoint) and the gguf
package's dequantization, rather than a hand-written one: transformers 5.x keeps GGUF
weights quantized when it loads them and cannot save them, so the tensors are read with
return_tensors=True and loaded into a plain model built from the GGUF's own config.
Prints the model's facts as one JSON line at the end."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def convert(gguf_file: Path, out: Path, dtype: str) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    meta = load_gguf_checkpoint(str(gguf_file))
    config = AutoConfig.for_model(**meta["config"])
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    loaded = load_gguf_checkpoint(str(gguf_file), return_tensors=True, model_to_load=skeleton)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    result = model.load_state_dict(loaded["tensors"], strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    missing = sorted(set(result.missing_keys) - tied)
    if missing or result.unexpected_keys:
        raise SystemExit(
            f"{gguf_file.name} does not map onto {type(model).__name__}: missing {missing[:5]}, "
            f"unexpected {sorted(result.unexpected_keys)[:5]}"
        )
    model.tie_weights()
    model.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    tokenizer.save_pretrained(out)
    return {
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": dtype,
        "num_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "num_kv_heads": getattr(config, "num_key_value_heads", config.num_attention_heads),
        "max_position_embeddings": getattr(config, "max_position_embeddings", 0),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    args = parser.parse_args(argv)
    facts = convert(args.gguf, args.out, args.dtype)
    sys.stdout.write(json.dumps(facts, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
