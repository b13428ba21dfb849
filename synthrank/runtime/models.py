"""From a model name or folder to loaded weights and tokenizer, for the trainers and the scorers alike.

:func:`inspect_model` reads a model's config without loading weights and says what it is, so a wrong
folder fails with a clear message; :func:`load_encoder` loads an encoder (bare, or with a one-logit
relevance head) from safetensors only, quietly; :func:`load_causal_lm` a causal LM and its tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from synthrank.errors import ModelError
from synthrank.models import resolve_encoder
from synthrank.runtime.device import quiet_transformers

if TYPE_CHECKING:  # pragma: no cover
    import torch

ModelKind = Literal["cross-encoder", "classifier", "encoder", "generative", "unknown"]
EncoderHead = Literal["none", "relevance"]


@dataclass(frozen=True)
class ModelInfo:
    """What a model folder or hub id holds, read from its config without loading weights."""

    source: str
    kind: ModelKind
    architectures: tuple[str, ...]
    num_labels: int
    model_type: str
    local: bool
    has_safetensors: bool

    def describe(self) -> str:
        arch = ", ".join(self.architectures) or "no architectures in config.json"
        article = "an" if self.kind[0] in "aeiou" else "a"
        return f"{article} {self.kind} ({arch}; num_labels={self.num_labels})"


def _classify(architectures: Sequence[str], num_labels: int, is_sentence_transformer: bool) -> ModelKind:
    for arch in architectures:
        if arch.endswith("ForSequenceClassification"):
            return "cross-encoder" if num_labels == 1 else "classifier"
    for arch in architectures:
        if arch.endswith(("ForCausalLM", "ForConditionalGeneration", "LMHeadModel")):
            return "generative"
    for arch in architectures:
        if arch.endswith(("Model", "ForMaskedLM", "ForPreTraining")):
            return "encoder"
    return "encoder" if is_sentence_transformer else "unknown"


def inspect_model(model: str | Path, *, trust_remote_code: bool = False) -> ModelInfo:
    """Read a model's config and say what it is, so a wrong folder fails with a clear message, not a shape error.

    Raises:
        ModelError: the name resolves to nothing loadable, or a local folder ships only pickle weights.
    """
    source = resolve_encoder(model)
    path = Path(source)
    local = path.is_dir()
    has_safetensors = True
    is_st = False
    if local:
        has_safetensors = any(path.glob("*.safetensors"))
        if not has_safetensors:
            pickles = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
            found = f" (found {', '.join(sorted(pickles))})" if pickles else ""
            raise ModelError(
                f"{path} has no *.safetensors weights{found}: synthrank loads safetensors only, because pickle "
                "weights can run code; convert them with `model.save_pretrained(dir, safe_serialization=True)`"
            )
        is_st = (path / "modules.json").exists() or (path / "config_sentence_transformers.json").exists()
        config_path = path / "config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{config_path}: cannot read the model config ({exc})") from None
        architectures = tuple(config.get("architectures") or ())
        num_labels = _num_labels(config)
        model_type = str(config.get("model_type", ""))
    else:
        try:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        except Exception as exc:  # OSError, ValueError, requests errors: all mean "cannot get it"
            raise ModelError(
                f"cannot load a model config for {source!r}: not a local folder, not a packaged short name "
                f"(e.g. 'minilm'), and the hub could not provide it ({type(exc).__name__}: {exc})"
            ) from None
        architectures = tuple(getattr(cfg, "architectures", None) or ())
        num_labels = int(getattr(cfg, "num_labels", 2))
        model_type = str(getattr(cfg, "model_type", ""))
    return ModelInfo(
        source=source,
        kind=_classify(architectures, num_labels, is_st),
        architectures=architectures,
        num_labels=num_labels,
        model_type=model_type,
        local=local,
        has_safetensors=has_safetensors,
    )


def _num_labels(config: dict[str, Any]) -> int:
    if "num_labels" in config:
        return int(config["num_labels"])
    if isinstance(config.get("id2label"), dict):
        return len(config["id2label"])
    return 2  # transformers' default for a config without labels


# --------------------------------------------------------------------------- loading


def _encoder_from_pretrained(source: str, head: EncoderHead, dtype: torch.dtype, trust_remote_code: bool) -> Any:
    from transformers import AutoModel, AutoModelForSequenceClassification

    if head == "relevance":
        return AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=1, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=dtype
        )
    return AutoModel.from_pretrained(source, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=dtype)


def load_encoder_weights(
    source: str, *, dtype: torch.dtype, head: EncoderHead = "none", trust_remote_code: bool = False
) -> Any:
    """An encoder's weights alone (safetensors only), quietly; transformers' own errors pass through."""
    with quiet_transformers():
        return _encoder_from_pretrained(source, head, dtype, trust_remote_code)


def load_encoder(
    info: ModelInfo,
    *,
    head: EncoderHead,
    dtype: torch.dtype,
    describe: str,
    trust_remote_code: bool = False,
    tokenizer: str | Path | None = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of an inspected encoder, from safetensors only, with the load reports silenced.

    ``head="relevance"`` loads a one-logit sequence-classification model (a plain encoder gets a fresh,
    randomly initialised head: it draws from torch's generator); ``"none"`` the bare encoder (hidden states).
    ``tokenizer`` names a tokenizer folder or id when it is not beside the weights.

    Raises:
        ModelError: "cannot load {describe}: ..." when transformers cannot read the weights or tokenizer.
    """
    from transformers import AutoTokenizer

    with quiet_transformers():
        try:
            model = _encoder_from_pretrained(info.source, head, dtype, trust_remote_code)
            loaded = AutoTokenizer.from_pretrained(str(tokenizer or info.source), trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load {describe}: {exc}") from None
    return model, loaded


def borrow_pad_token(tokenizer: Any, source: str) -> bool:
    """Give a tokenizer without a padding token its end token as one; ``True`` when it had to.

    Raises:
        ModelError: the tokenizer has neither (batches cannot be padded).
    """
    if tokenizer.pad_token_id is not None:
        return False
    if tokenizer.eos_token_id is None:
        raise ModelError(f"the tokenizer of {source!r} has no padding token and no end token")
    tokenizer.pad_token = tokenizer.eos_token
    return True


def load_causal_lm(
    source: str | Path, *, dtype: torch.dtype, describe: str, tokenizer: str | Path | None = None
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a causal LM folder or hub id (the LLM reranker and its LoRA trainer).

    Raises:
        ModelError: "cannot load {describe} (...)" when transformers cannot read the tokenizer or weights.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loader: Any = AutoModelForCausalLM
    try:
        loaded = AutoTokenizer.from_pretrained(str(tokenizer or source))
        model = loader.from_pretrained(str(source), dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load {describe} ({type(exc).__name__}: {exc})") from exc
    return model, loaded
