"""A tiny random causal LM with a word-level tokenizer, for the LLM-reranker unit tests (built in tmp, no download)."""

from __future__ import annotations

import re
from pathlib import Path

from synthrank.llmrank.prompt import DEFAULT_INSTRUCTION, DEFAULT_REASONING_INSTRUCTION, DEFAULT_SYSTEM

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
PIECES = re.compile(r"\s+|\w+|[^\w\s]")

TOPICS = {
    "glaucoma": "glaucoma damages the optic nerve and can cause blindness",
    "diabetes": "diabetes means blood sugar levels are too high",
    "asthma": "asthma narrows the airways of the lungs",
    "cataract": "a cataract clouds the lens of the eye",
    "migraine": "migraine causes throbbing headaches",
    "insulin": "insulin is a hormone that lowers blood sugar",
    "arthritis": "arthritis causes joint pain and stiffness",
    "anemia": "anemia means too few red blood cells",
}

EXTRA_TEXT = (
    "what is how treated causes who gets symptoms of are the a an reason because it about answer Answer "
    "True False TRUE FALSE yes no system user assistant Query Passage relevant not relevant ok im_end "
    "alpha beta gamma delta"
)


def vocabulary() -> list[str]:
    texts = [DEFAULT_SYSTEM, DEFAULT_INSTRUCTION, DEFAULT_REASONING_INSTRUCTION, EXTRA_TEXT, "\n\n\n", "Query:\n", "Answer:\n"]
    texts += [f"{k} {v}" for k, v in TOPICS.items()]
    texts += [" true", " false", "true", "false", "\n", "\n\n", " ", "user", "assistant", "system"]
    vocab: list[str] = list(SPECIAL)
    for text in texts:
        for piece in PIECES.findall(text):
            if piece not in vocab:
                vocab.append(piece)
    return vocab


def build_tokenizer(folder: Path, *, chat_template: bool = True) -> Path:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(vocabulary())}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+|\w+|[^\w\s]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def build_model(folder: Path, *, seed: int = 0, chat_template: bool = True) -> Path:
    """A 2-layer LLaMA-architecture causal LM with random weights and the tiny tokenizer, saved as an HF folder.

    (LLaMA rather than Qwen2: transformers 5 rebuilds a ``qwen2`` folder's tokenizer as a BPE Qwen2Tokenizer,
    ignoring our word-level ``tokenizer.json``; the real Qwen model is covered by the integration tests.)
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    build_tokenizer(folder, chat_template=chat_template)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocabulary()),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        initializer_range=0.3,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def toy_examples(n_queries: int = 8) -> list:
    """Relevant = the passage about the query's topic; hard negative = another topic's passage."""
    from synthrank.llmrank.data import SFTExample

    topics = list(TOPICS)
    out = []
    for i in range(n_queries):
        topic = topics[i % len(topics)]
        other = topics[(i + 3) % len(topics)]
        query = f"what is {topic}"
        out.append(SFTExample(query, f"{topic} {TOPICS[topic]}", True, f"it is about {topic}", f"q{i}", topic))
        out.append(SFTExample(query, f"{other} {TOPICS[other]}", False, f"it is about {other}", f"q{i}", other))
    return out
