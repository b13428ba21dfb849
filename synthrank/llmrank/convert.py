"""GGUF -> a normal Hugging Face causal-LM folder, converted once and cached.

Why: the only instruction LLMs that run offline here ship as GGUF files (see
``synthrank.models.gguf``). ``transformers`` can read GGUF (dequantizing it, which takes
~100 s for 0.5B parameters), but LoRA training, ``peft`` and fast reloads want an ordinary
safetensors folder. We convert once into the model cache and reuse the folder afterwards.
The weights keep the quality of the quantized file (Q4_K_M dequantized), not of the original
fp16 checkpoint.

Example:
    >>> from synthrank.llmrank.convert import resolve_causal_lm
    >>> folder = resolve_causal_lm("qwen2.5-coder-0.5b")   # converts on first use, then cached
    >>> sorted(p.name for p in folder.iterdir())[:2]
    ['config.json', 'generation_config.json']
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from synthrank.data.jsonl import atomic_dir
from synthrank.errors import ModelError
from synthrank.runtime import torch_dtype

logger = logging.getLogger(__name__)

CONVERSION_MARKER = "synthrank_conversion.json"
"""Written last into a converted folder: its presence means the conversion completed."""


def hf_cache_dir() -> Path:
    """Where converted folders live: ``<model cache>/hf`` (``$SYNTHRANK_CACHE/models/hf`` or ``~/.cache/synthrank/models/hf``)."""
    from synthrank.models.gguf import cache_dir

    return cache_dir() / "hf"


def is_hf_model_dir(path: str | Path) -> bool:
    """True for a folder ``from_pretrained`` can load (a config and weights, or a peft adapter)."""
    p = Path(path)
    return p.is_dir() and ((p / "config.json").exists() or (p / "adapter_config.json").exists())


def convert_gguf_to_hf(
    gguf_path: str | Path,
    output_dir: str | Path,
    *,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Dequantize a GGUF causal LM into ``output_dir`` (safetensors + tokenizer + config), atomically.

    The folder is assembled beside its final name and renamed into place only when complete,
    so an interrupted conversion never leaves a half-written model that later runs would trust.

    Args:
        gguf_path: the ``.gguf`` file.
        output_dir: the folder to create.
        dtype: weight dtype to store (``float32`` keeps the dequantized values exactly; ``bfloat16`` halves the size).
        overwrite: replace an existing complete conversion.

    Returns:
        ``output_dir``.
    """
    gguf_path = Path(gguf_path).expanduser().resolve()
    output_dir = Path(output_dir).expanduser()
    if not gguf_path.is_file():
        raise ModelError(f"GGUF file {gguf_path} does not exist")
    if (output_dir / CONVERSION_MARKER).exists() and not overwrite:
        return output_dir
    weights_dtype = torch_dtype(dtype)
    started = time.perf_counter()
    logger.info("converting %s to a Hugging Face folder (dequantizing; ~100 s per 0.5B parameters)", gguf_path.name)
    atomic_dir(output_dir, lambda tmp: _write_conversion(gguf_path, tmp, dtype, weights_dtype, started))
    logger.info("converted %s -> %s in %.0f s", gguf_path.name, output_dir, time.perf_counter() - started)
    return output_dir


def _write_conversion(gguf_path: Path, folder: Path, dtype: str, weights_dtype: Any, started: float) -> None:
    """Tokenizer, dequantized safetensors weights and, last, the marker that says the conversion completed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=weights_dtype)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise ModelError(
            f"transformers cannot load {gguf_path} as a causal LM ({type(exc).__name__}: {exc}); "
            "only GGUF architectures transformers supports (llama, qwen2, mistral, gemma...) convert"
        ) from exc
    tokenizer.save_pretrained(str(folder))
    _plain_copy(model, weights_dtype, gguf_path.name).save_pretrained(str(folder), safe_serialization=True)
    marker: dict[str, Any] = {
        "source": str(gguf_path),
        "source_name": gguf_path.name,
        "source_bytes": gguf_path.stat().st_size,
        "dtype": dtype,
        "architecture": type(model).__name__,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "seconds": round(time.perf_counter() - started, 1),
        "note": "weights dequantized from the GGUF file: the quality of the quantized model, not of the original",
    }
    (folder / CONVERSION_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _plain_copy(model: Any, weights_dtype: Any, name: str) -> Any:
    """A plain model with a GGUF-loaded model's dequantized weights.

    A GGUF-loaded model refuses ``save_pretrained`` (it counts as quantized): its weights go into a plain
    model built from the same config, which saves like any other.
    """
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=weights_dtype)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False, assign=True)
    missing = [k for k in missing if k not in _tied_keys(plain)]
    if missing or unexpected:
        raise ModelError(f"converting {name}: weights missing {missing[:5]} / unexpected {unexpected[:5]}")
    plain.tie_weights()
    if model.generation_config is not None:
        plain.generation_config = model.generation_config
    return plain


def resolve_causal_lm(name_or_path: str | Path, *, cache: str | Path | None = None, dtype: str = "float32") -> Path | str:
    """Something ``AutoModelForCausalLM.from_pretrained`` loads, for any way a user names a model.

    - a Hugging Face folder (``config.json``) -> itself;
    - a packaged GGUF short name (``qwen2.5-coder-0.5b``), a ``.gguf`` file or a folder holding one
      -> its converted folder in the cache (converted on first use);
    - anything else (a hub id) -> returned unchanged for ``from_pretrained``.
    """
    from synthrank.models.gguf import canonical_name, resolve_gguf

    text = str(name_or_path).strip()
    if not text:
        raise ModelError("empty model name")
    path = Path(text).expanduser()
    if path.is_dir() and is_hf_model_dir(path):
        return path
    is_gguf = canonical_name(text) is not None or text.endswith(".gguf") or (path.is_dir() and any(path.glob("*.gguf")))
    if not is_gguf:
        if path.exists():
            raise ModelError(f"{path} is neither a Hugging Face model folder (config.json) nor a GGUF file")
        return text
    gguf = resolve_gguf(text)
    root = Path(cache).expanduser() if cache is not None else hf_cache_dir()
    suffix = "" if dtype == "float32" else f"-{dtype}"
    target = root / f"{gguf.name.removesuffix('.gguf')}{suffix}"
    marker = target / CONVERSION_MARKER
    if marker.exists():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("source_bytes") == gguf.stat().st_size:
            return target
        logger.warning("%s was converted from a different file (%s bytes); converting again", target, info.get("source_bytes"))
    return convert_gguf_to_hf(gguf, target, dtype=dtype, overwrite=True)


def _tied_keys(model: Any) -> set[str]:
    """Parameter names that are tied to others (e.g. ``lm_head.weight`` of small Qwen models)."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return set()
    return {"lm_head.weight"}
