"""Bi-encoder scoring: cosine of pooled embeddings of query and document.

Two uses: the zero-shot baseline (with no pre-trained relevance cross-encoder available offline,
"the same MiniLM used as a sentence embedder" is what a trained reranker has to beat), and the
bi-encoder the trainer fine-tunes with LCE (``TrainConfig(architecture="bi-encoder")``), which
starts *as* that baseline and so keeps its out-of-domain behaviour within reach. Each distinct
query and document text is embedded once, however many pairs it appears in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.errors import ModelError
from synthrank.runtime import (
    SCORING,
    Pooling,
    autocast_context,
    batch_tensors,
    inspect_model,
    load_encoder,
    pool_embeddings,
    read_sentence_transformers_settings,
    resolve_device,
    resolve_precision,
    split_dtype,
    torch_threads,
)

logger = logging.getLogger(__name__)


class BiEncoderScorer:
    """Scores pairs by the cosine similarity of mean-pooled (or CLS) transformer embeddings.

    Implements :class:`~synthrank.rerank.base.PairScorer`. Pooling and maximum length default
    to what a sentence-transformers folder declares (``1_Pooling/config.json``,
    ``sentence_bert_config.json``), else mean pooling and 256 tokens.

    Args:
        model: encoder folder, packaged short name (``"minilm"``) or hub id.
        device: ``None``/``"auto"`` picks CUDA when present.
        batch_size: texts per forward pass.
        max_length: tokens per text (``None``: the folder's ``max_seq_length``, else 256).
        pooling: ``"mean"`` or ``"cls"`` (``None``: from the folder, else mean).
        normalize: L2-normalise embeddings, so the score is the cosine.
        query_prefix / document_prefix: text put before each query / document (E5-style models need them).
        dtype / num_threads / trust_remote_code: as for :class:`CrossEncoderReranker`.

    Example:
        >>> scorer = BiEncoderScorer("minilm")
        >>> scorer.score_pairs(["what causes glaucoma"], ["Glaucoma is caused by ..."])
        array([0.61], dtype=float32)
    """

    def __init__(
        self,
        model: str | Path = "minilm",
        *,
        device: str | None = None,
        batch_size: int = 64,
        max_length: int | None = None,
        pooling: Pooling | None = None,
        normalize: bool = True,
        query_prefix: str = "",
        document_prefix: str = "",
        dtype: str = "auto",
        num_threads: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if pooling not in (None, "mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.model_name = str(model)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.pooling = pooling
        self.normalize = normalize
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.dtype = dtype
        self.num_threads = num_threads
        self.trust_remote_code = trust_remote_code
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = "cpu"
        self._autocast: Any = None
        self._max_length = max_length or 256
        self._pooling: Pooling = pooling or "mean"

    @property
    def score_scale(self) -> str:
        """What a score is: ``"cosine"`` (in [-1, 1]) or, with ``normalize=False``, a ``"dot_product"``.

        Adapters that map scores to 0..1 read it (a sigmoid suits logits, not cosines).
        """
        return "cosine" if self.normalize else "dot_product"

    def warm_up(self) -> None:
        """Load tokenizer and weights (once); called by :meth:`encode` when needed."""
        if self._model is not None:
            return
        info = inspect_model(self.model_name, trust_remote_code=self.trust_remote_code)
        if info.kind == "generative":
            raise ModelError(f"{info.source} is {info.describe()}: not an encoder for embeddings")
        folder = Path(info.source) if info.local else None
        if folder is not None:
            self._read_sentence_transformers_settings(folder)
        self._device = resolve_device(self.device)
        precision = resolve_precision(self.dtype, self._device, SCORING)
        weights_dtype, self._autocast = split_dtype(precision, self._device)
        model, tokenizer = load_encoder(
            info,
            head="none",
            dtype=weights_dtype,
            describe=f"the encoder {info.source!r}",
            trust_remote_code=self.trust_remote_code,
        )
        if tokenizer.pad_token_id is None:
            raise ModelError(f"the tokenizer of {info.source!r} has no padding token")
        limit = getattr(model.config, "max_position_embeddings", 512) or 512
        self._max_length = min(self._max_length, limit)
        self._model = model.eval().to(self._device)
        self._tokenizer = tokenizer
        logger.info("loaded bi-encoder %s (%s pooling, max_length=%d)", info.source, self._pooling, self._max_length)

    def _read_sentence_transformers_settings(self, folder: Path) -> None:
        max_length, pooling = read_sentence_transformers_settings(folder)
        if self.max_length is None and max_length is not None:
            self._max_length = max_length
        if self.pooling is None and pooling is not None:
            self._pooling = pooling

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, *, batch_size: int = 64, max_length: int = 256, pooling: Pooling = "mean"
    ) -> BiEncoderScorer:
        """Wrap an encoder already in memory (the trainer scores its dev set with the live model this way)."""
        self = cls(getattr(model, "name_or_path", "<in-memory>") or "<in-memory>", batch_size=batch_size,
                   max_length=max_length, pooling=pooling)  # fmt: skip
        self._model = model
        self._tokenizer = tokenizer
        self._device = str(next(model.parameters()).device)
        return self

    def close(self) -> None:
        self._model = None
        self._tokenizer = None

    def __repr__(self) -> str:
        return f"BiEncoderScorer(model={self.model_name!r}, pooling={self.pooling!r}, normalize={self.normalize})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "device": self.device,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "dtype": self.dtype,
            "num_threads": self.num_threads,
            "trust_remote_code": self.trust_remote_code,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BiEncoderScorer:
        return cls(**data)

    def encode(self, texts: Sequence[str], *, show_progress: bool = False, desc: str = "embed") -> np.ndarray:
        """Embeddings of ``texts`` (float32, one row each), length-sorted into batches."""
        import torch
        from tqdm.auto import tqdm

        self.warm_up()
        tok = self._tokenizer
        out = np.zeros((len(texts), self._model.config.hidden_size), dtype=np.float32)
        if not texts:
            return out
        enc = tok(list(texts), truncation=True, max_length=self._max_length, padding=False)
        ids = enc["input_ids"]
        order = np.argsort([-len(r) for r in ids], kind="stable")
        with torch_threads(self.num_threads), torch.inference_mode(), autocast_context(self._device, self._autocast):
            for start in tqdm(
                range(0, len(order), self.batch_size), desc=desc, unit="batch", disable=not show_progress
            ):
                rows = order[start : start + self.batch_size]
                inputs = batch_tensors(
                    [ids[r] for r in rows],
                    None,
                    pad_id=tok.pad_token_id,
                    left=getattr(tok, "padding_side", "right") == "left",
                    device=self._device,
                )
                hidden = self._model(**inputs).last_hidden_state.float()
                pooled = pool_embeddings(hidden, inputs["attention_mask"], self._pooling, self.normalize)
                out[rows] = pooled.cpu().numpy()
        return out

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        """Cosine (dot product when ``normalize=False``) of each pair's embeddings, float32."""
        if isinstance(queries, str) or isinstance(documents, str):
            raise TypeError("score_pairs() takes two sequences of strings")
        if len(queries) != len(documents):
            raise ValueError(f"got {len(queries)} queries but {len(documents)} documents; they must pair up")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        uq = list(dict.fromkeys(queries))
        ud = list(dict.fromkeys(documents))
        q_emb = self.encode([self.query_prefix + q for q in uq], show_progress=show_progress, desc="embed queries")
        d_emb = self.encode([self.document_prefix + d for d in ud], show_progress=show_progress, desc="embed docs")
        q_pos = {q: i for i, q in enumerate(uq)}
        d_pos = {d: i for i, d in enumerate(ud)}
        qi = np.fromiter((q_pos[q] for q in queries), np.int64, len(queries))
        di = np.fromiter((d_pos[d] for d in documents), np.int64, len(documents))
        return np.einsum("ij,ij->i", q_emb[qi], d_emb[di]).astype(np.float32)
