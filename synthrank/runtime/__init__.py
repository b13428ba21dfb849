"""How synthrank runs a model, in one place for the trainers and the scorers.

- :mod:`~synthrank.runtime.models`: a name or folder -> what it is (:func:`inspect_model`) -> weights and
  tokenizer (:func:`load_encoder`, :func:`load_causal_lm`);
- :mod:`~synthrank.runtime.precision`: the one dtype policy (:func:`resolve_precision` and its per-work
  policies), autocast;
- :mod:`~synthrank.runtime.device`: the device, CPU threads, quiet transformers logging;
- :mod:`~synthrank.runtime.batching`: padded model inputs from token id rows;
- :mod:`~synthrank.runtime.embeddings`: pooling and sentence-transformers folder files.

Nothing here imports torch or transformers until it is called.
"""

from __future__ import annotations

from synthrank.runtime.batching import batch_tensors, pad_rows
from synthrank.runtime.device import quiet_transformers, resolve_device, set_torch_threads, torch_threads
from synthrank.runtime.embeddings import (
    Pooling,
    pool_embeddings,
    read_sentence_transformers_settings,
    write_sentence_transformers_files,
)
from synthrank.runtime.models import (
    ModelInfo,
    ModelKind,
    borrow_pad_token,
    inspect_model,
    load_causal_lm,
    load_encoder,
    load_encoder_weights,
)
from synthrank.runtime.precision import (
    CAUSAL_LM,
    DTYPE_NAMES,
    EVALUATION,
    SCORING,
    TRAINING,
    Precision,
    PrecisionPolicy,
    autocast_context,
    autocast_dtype,
    evaluation_dtype,
    parse_precision,
    resolve_precision,
    split_dtype,
    torch_dtype,
)

__all__ = [
    "CAUSAL_LM",
    "DTYPE_NAMES",
    "EVALUATION",
    "SCORING",
    "TRAINING",
    "ModelInfo",
    "ModelKind",
    "Pooling",
    "Precision",
    "PrecisionPolicy",
    "autocast_context",
    "autocast_dtype",
    "batch_tensors",
    "borrow_pad_token",
    "evaluation_dtype",
    "inspect_model",
    "load_causal_lm",
    "load_encoder",
    "load_encoder_weights",
    "pad_rows",
    "parse_precision",
    "pool_embeddings",
    "quiet_transformers",
    "read_sentence_transformers_settings",
    "resolve_device",
    "resolve_precision",
    "set_torch_threads",
    "split_dtype",
    "torch_dtype",
    "torch_threads",
    "write_sentence_transformers_files",
]
