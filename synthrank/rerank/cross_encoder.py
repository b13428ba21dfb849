"""The fast cross-encoder reranker every adapter uses: batched (query, document) scoring on CPU or GPU.

Speed comes from doing less work, not from changing the numbers: pairs are tokenized once,
sorted by their real token length so each batch pads to almost nothing, run under
``torch.inference_mode``; on CUDA the weights run in bf16/fp16, on CPU an optional int8
dynamic quantization trades a little accuracy for speed. Long documents are truncated, or
split into overlapping passages whose best score stands for the document ("maxp").
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthrank.errors import ModelError
from synthrank.runtime import (
    DTYPE_NAMES,
    SCORING,
    ModelInfo,
    autocast_context,
    batch_tensors,
    borrow_pad_token,
    inspect_model,
    load_encoder,
    resolve_device,
    resolve_precision,
    split_dtype,
    torch_threads,
)
from synthrank.runtime import quiet_transformers as quiet_transformers  # benchmarks import it from here

logger = logging.getLogger(__name__)

LongDocuments = Literal["truncate", "maxp"]


# --------------------------------------------------------------------------- batch size

CPU_BATCH_SIZE = 32
CUDA_BATCH_SIZE = 128


def resolve_batch_size(batch_size: int | None, device: str) -> int:
    """``None`` -> a batch that keeps the device busy: 128 pairs on a GPU, 32 on a CPU (where larger batches only pad more)."""
    if batch_size is not None:
        return batch_size
    return CUDA_BATCH_SIZE if device.startswith("cuda") else CPU_BATCH_SIZE


# --------------------------------------------------------------------------- the reranker


@dataclass
class _Encoded:
    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    owner: np.ndarray  # row -> position of its pair inside the chunk


class CrossEncoderReranker:
    """Scores (query, document) pairs with a one-logit sequence-classification cross-encoder.

    It implements :class:`~synthrank.rerank.base.PairScorer`, so the evaluation harness, the
    Haystack ranker and the PyTerrier reranker all use it. Loading is lazy (``warm_up()``).

    Args:
        model: a folder (e.g. the ``model/`` folder ``synthrank train`` writes), a packaged short name,
            or a hub id. It must be a one-logit ``*ForSequenceClassification`` model unless ``fresh_head``.
        device: ``None``/``"auto"`` picks CUDA when present, else CPU.
        batch_size: pairs per forward pass; ``None`` takes 32 on CPU and 128 on CUDA (a GPU needs bigger
            batches to be busy, a CPU gains nothing from them and pads more).
        max_length: tokens per (query, document) input; ``None`` takes the tokenizer's limit (capped at 512).
        dtype: ``"auto"`` (bf16/fp16 on CUDA, fp32 on CPU: the same scores as any fp32 scorer), ``"float32"``,
            ``"bfloat16"`` or ``"float16"``. On a CPU, bf16 runs as autocast over fp32 weights: on CPUs with AMX
            (Intel Sapphire Rapids and later) several times faster, with scores off by ~1e-2.
        num_threads: CPU intra-op threads while scoring (restored afterwards); ``None`` leaves torch's setting.
            On a CPU shared with other busy processes, ``1`` avoids OpenMP barrier waits behind descheduled
            threads (measured here: tiny batches ran 25x faster with 1 thread than with 2 under load).
        quantize: ``"int8"`` for dynamic int8 quantization of the linear layers (CPU only).
        workers: on CPU, score this many batches at once, each in its own thread with its share of
            the intra-op threads (``num_threads`` or torch's setting, divided by ``workers``, at least 1).
            Small matrices parallelise poorly inside one op, so whole batches side by side keep the
            cores busier; the scores are the same. ``None``/``1``: one batch at a time. Ignored on CUDA.
        long_documents: ``"truncate"`` cuts documents at ``max_length``; ``"maxp"`` splits them into
            overlapping windows and keeps each document's best window score.
        stride: tokens shared by consecutive windows in ``"maxp"`` mode.
        max_passages: at most this many windows per document in ``"maxp"`` mode (``None``: all).
        trust_remote_code: allow model code shipped with the model (off: it runs arbitrary code).
        fresh_head: accept a plain encoder and add an untrained one-logit head (scores at chance;
            only for starting a training run or for plumbing tests).
        tokenizer: tokenizer folder or id when it is not beside the weights.

    Example:
        >>> reranker = CrossEncoderReranker("runs/medquad/model", batch_size=32)
        >>> scores = reranker.score_pairs(["what causes glaucoma"] * 2, [doc_a, doc_b])
        >>> reranker.rerank("what causes glaucoma", [doc_a, doc_b], top_k=1)
        [(1, 3.21)]
    """

    def __init__(
        self,
        model: str | Path = "minilm",
        *,
        device: str | None = None,
        batch_size: int | None = None,
        max_length: int | None = None,
        dtype: str = "auto",
        num_threads: int | None = None,
        quantize: str | None = None,
        workers: int | None = None,
        long_documents: LongDocuments = "truncate",
        stride: int = 64,
        max_passages: int | None = None,
        trust_remote_code: bool = False,
        fresh_head: bool = False,
        tokenizer: str | Path | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_length is not None and max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {max_length}")
        if long_documents not in ("truncate", "maxp"):
            raise ValueError(f"long_documents must be 'truncate' or 'maxp', got {long_documents!r}")
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
        if stride < 0:
            raise ValueError(f"stride must be >= 0, got {stride}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if max_passages is not None and max_passages < 1:
            raise ValueError(f"max_passages must be at least 1, got {max_passages}")
        self.model_name = str(model)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.dtype = dtype
        self.num_threads = num_threads
        self.quantize = quantize
        self.workers = workers
        self.long_documents: LongDocuments = long_documents
        self.stride = stride
        self.max_passages = max_passages
        self.trust_remote_code = trust_remote_code
        self.fresh_head = fresh_head
        self.tokenizer_name = str(tokenizer) if tokenizer is not None else None
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str = "cpu"
        self._autocast: Any = None  # a torch dtype when bf16/fp16 run as CPU autocast
        self._batch_size: int = batch_size or CPU_BATCH_SIZE
        self._max_length: int = max_length or 512
        self._warned_long_query = False

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 32,
        max_length: int | None = None,
        long_documents: LongDocuments = "truncate",
        stride: int = 64,
        max_passages: int | None = None,
    ) -> CrossEncoderReranker:
        """Wrap a model already in memory (the trainer scores its dev set with the live model this way)."""
        self = cls(
            getattr(model, "name_or_path", "<in-memory>") or "<in-memory>",
            batch_size=batch_size,
            max_length=max_length,
            long_documents=long_documents,
            stride=stride,
            max_passages=max_passages,
        )
        self._model = model
        self._tokenizer = tokenizer
        self._device = str(next(model.parameters()).device)
        self._batch_size = batch_size
        self._max_length = self._resolve_max_length(model, tokenizer)
        return self

    def warm_up(self) -> None:
        """Load tokenizer and weights (once); called by :meth:`score_pairs` when needed."""
        if self._model is not None:
            return
        import torch

        info = inspect_model(self.model_name, trust_remote_code=self.trust_remote_code)
        self._check_kind(info)
        self._device = resolve_device(self.device)
        if self.quantize == "int8" and not self._device.startswith("cpu"):
            raise ModelError("quantize='int8' is dynamic CPU quantization; on CUDA use dtype='bfloat16' or 'float16'")
        self._batch_size = resolve_batch_size(self.batch_size, self._device)
        precision = resolve_precision(self.dtype, self._device, SCORING)
        if self.quantize is not None and precision != "fp32":
            raise ModelError("quantize='int8' scores int8 weights with float32 activations: leave dtype='auto'")
        weights_dtype, self._autocast = split_dtype(precision, self._device)
        model, tokenizer = load_encoder(
            info,
            head="relevance",
            dtype=weights_dtype,
            describe=f"the cross-encoder {info.source!r}",
            trust_remote_code=self.trust_remote_code,
            tokenizer=self.tokenizer_name,
        )
        if borrow_pad_token(tokenizer, info.source):
            model.config.pad_token_id = tokenizer.pad_token_id
        model.eval()
        if self.quantize == "int8":
            with warnings.catch_warnings():
                # torch >= 2.10 marks torch.ao.quantization deprecated (torchao replaces it) but still ships it
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", UserWarning)
                from torch.ao.quantization import quantize_dynamic

                model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        model.to(self._device)
        self._model = model
        self._tokenizer = tokenizer
        self._max_length = self._resolve_max_length(model, tokenizer)
        logger.info(
            "loaded cross-encoder %s on %s (%s%s%s, max_length=%d)",
            info.source,
            self._device,
            DTYPE_NAMES[precision],
            " autocast" if self._autocast is not None else "",
            ", int8" if self.quantize else "",
            self._max_length,
        )

    def _check_kind(self, info: ModelInfo) -> None:
        """Refuse anything but a one-logit cross-encoder (a plain encoder only with ``fresh_head``)."""
        if info.kind == "cross-encoder":
            return
        if info.kind == "encoder" and self.fresh_head:
            logger.warning(
                "%s is a plain encoder: adding an untrained one-logit head (scores are at chance until trained)",
                info.source,
            )
            return
        hint = (
            " Train one with `synthrank train`, or pass fresh_head=True to start from this encoder."
            if info.kind == "encoder"
            else ""
        )
        raise ModelError(
            f"{info.source} is {info.describe()}, not a one-logit sequence-classification cross-encoder.{hint}"
        )

    def _concurrent_batches(self) -> int:
        return (self.workers or 1) if self._device.startswith("cpu") else 1

    def _intra_op_threads(self) -> int | None:
        """Each concurrent batch gets an equal share of the CPU threads, so the cores are not oversubscribed."""
        workers = self._concurrent_batches()
        if workers == 1:
            return self.num_threads
        import torch

        return max(1, (self.num_threads or torch.get_num_threads()) // workers)

    def _resolve_max_length(self, model: Any, tokenizer: Any) -> int:
        limit = getattr(model.config, "max_position_embeddings", None) or 512
        if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2  # positions start after the padding index
        if self.max_length is not None:
            if self.max_length > limit:
                raise ModelError(f"max_length={self.max_length} exceeds the model's {limit} positions")
            return self.max_length
        tok_max = getattr(tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 8 <= tok_max <= 100_000:
            return min(tok_max, limit)
        return min(512, limit)

    def close(self) -> None:
        """Drop the model and tokenizer (frees memory; a later call loads them again)."""
        self._model = None
        self._tokenizer = None

    @property
    def model(self) -> Any:
        self.warm_up()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self.warm_up()
        return self._tokenizer

    @property
    def effective_max_length(self) -> int:
        self.warm_up()
        return self._max_length

    def __repr__(self) -> str:
        return (
            f"CrossEncoderReranker(model={self.model_name!r}, batch_size={self.batch_size}, "
            f"max_length={self.max_length}, long_documents={self.long_documents!r}, quantize={self.quantize!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Every init parameter, so adapters can serialise the reranker and rebuild it identically."""
        return {
            "model": self.model_name,
            "device": self.device,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "dtype": self.dtype,
            "num_threads": self.num_threads,
            "quantize": self.quantize,
            "workers": self.workers,
            "long_documents": self.long_documents,
            "stride": self.stride,
            "max_passages": self.max_passages,
            "trust_remote_code": self.trust_remote_code,
            "fresh_head": self.fresh_head,
            "tokenizer": self.tokenizer_name,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrossEncoderReranker:
        return cls(**data)

    # ----------------------------------------------------------------- scoring

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        """One raw logit per (query, document) pair, as float32; higher means more relevant."""
        if isinstance(queries, str) or isinstance(documents, str):
            raise TypeError("score_pairs() takes two sequences of strings; for one query use rerank()")
        if len(queries) != len(documents):
            raise ValueError(f"got {len(queries)} queries but {len(documents)} documents; they must pair up")
        n = len(queries)
        scores = np.full(n, -np.inf, dtype=np.float32)
        if n == 0:
            return scores
        self.warm_up()
        from tqdm.auto import tqdm

        # A cheap global order by characters groups similar lengths into the same chunk; inside a
        # chunk, the exact token lengths order the rows so batches pad to (nearly) nothing.
        order = np.argsort(np.fromiter((len(q) + len(d) for q, d in zip(queries, documents, strict=True)), np.int64, n))
        chunk = max(self._batch_size * 32, 1024)
        with (
            torch_threads(self._intra_op_threads()),
            tqdm(total=n, desc="rerank", unit="pair", disable=not show_progress, smoothing=0.1) as bar,
        ):
            for start in range(0, n, chunk):
                idx = order[start : start + chunk]
                enc = self._encode([queries[i] for i in idx], [documents[i] for i in idx])
                row_scores = self._score_rows(enc, bar=bar, pairs_per_row=len(idx) / max(len(enc.input_ids), 1))
                best = np.full(len(idx), -np.inf, dtype=np.float32)
                np.maximum.at(best, enc.owner, row_scores)
                scores[idx] = best
        return scores

    def rerank(
        self, query: str, documents: Sequence[str], top_k: int | None = None, *, show_progress: bool = False
    ) -> list[tuple[int, float]]:
        """``(index into documents, score)`` best first, at most ``top_k`` of them."""
        scores = self.score_pairs([query] * len(documents), documents, show_progress=show_progress)
        ranked = sorted(range(len(documents)), key=lambda i: (-float(scores[i]), i))
        if top_k is not None:
            ranked = ranked[:top_k]
        return [(i, float(scores[i])) for i in ranked]

    def _encode(self, queries: list[str], documents: list[str]) -> _Encoded:
        tok = self._tokenizer
        max_length = self._max_length
        if self.long_documents == "truncate":
            enc = tok(queries, documents, truncation="longest_first", max_length=max_length, padding=False)
            return _Encoded(list(enc["input_ids"]), _type_ids(enc), np.arange(len(queries)))
        if not getattr(tok, "is_fast", False):
            raise ModelError("long_documents='maxp' needs a fast (Rust) tokenizer to split documents into windows")
        # maxp: a query too long to leave room for a window of the document is scored truncated.
        special = tok.num_special_tokens_to_add(pair=True)
        q_lens = [len(ids) for ids in tok(queries, add_special_tokens=False)["input_ids"]]
        room = [max_length - special - q for q in q_lens]
        windowed = [i for i, r in enumerate(room) if r > self.stride and r >= 16]
        fallback = [i for i, r in enumerate(room) if not (r > self.stride and r >= 16)]
        if fallback and not self._warned_long_query:
            logger.warning(
                "%d queries leave no room for a %d-token window stride at max_length=%d; those pairs are truncated",
                len(fallback),
                self.stride,
                max_length,
            )
            self._warned_long_query = True
        ids: list[list[int]] = []
        types: list[list[int]] | None = [] if "token_type_ids" in tok.model_input_names else None
        owners: list[int] = []
        if windowed:
            enc = tok(
                [queries[i] for i in windowed],
                [documents[i] for i in windowed],
                truncation="only_second",
                max_length=max_length,
                stride=self.stride,
                return_overflowing_tokens=True,
                padding=False,
            )
            seen: dict[int, int] = {}
            enc_types = _type_ids(enc)
            for row, sample in enumerate(enc["overflow_to_sample_mapping"]):
                count = seen.get(sample, 0)
                if self.max_passages is not None and count >= self.max_passages:
                    continue
                seen[sample] = count + 1
                ids.append(enc["input_ids"][row])
                if types is not None and enc_types is not None:
                    types.append(enc_types[row])
                owners.append(windowed[sample])
        if fallback:
            enc = tok(
                [queries[i] for i in fallback],
                [documents[i] for i in fallback],
                truncation="longest_first",
                max_length=max_length,
                padding=False,
            )
            enc_types = _type_ids(enc)
            for row, i in enumerate(fallback):
                ids.append(enc["input_ids"][row])
                if types is not None and enc_types is not None:
                    types.append(enc_types[row])
                owners.append(i)
        return _Encoded(ids, types, np.asarray(owners, dtype=np.int64))

    def _score_rows(self, enc: _Encoded, *, bar: Any = None, pairs_per_row: float = 1.0) -> np.ndarray:
        import torch

        model = self._model
        tok = self._tokenizer
        lengths = np.fromiter((len(r) for r in enc.input_ids), np.int64, len(enc.input_ids))
        order = np.argsort(-lengths, kind="stable")
        out = np.empty(len(order), dtype=np.float32)
        left = getattr(tok, "padding_side", "right") == "left"

        def score_batch(start: int) -> None:
            rows = order[start : start + self._batch_size]
            inputs = batch_tensors(
                [enc.input_ids[r] for r in rows],
                [enc.token_type_ids[r] for r in rows] if enc.token_type_ids is not None else None,
                pad_id=tok.pad_token_id,
                left=left,
                device=self._device,
                drop_full_mask=True,
            )
            # thread-local: entered in the thread that runs the model
            with torch.inference_mode(), autocast_context(self._device, self._autocast):
                logits = model(**inputs).logits
            out[rows] = logits[:, 0].float().cpu().numpy()
            if bar is not None:
                bar.update(len(rows) * pairs_per_row)

        starts = range(0, len(order), self._batch_size)
        workers = self._concurrent_batches()
        if workers > 1 and len(starts) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synthrank-rerank") as pool:
                for _ in pool.map(score_batch, starts):  # re-raises a batch's error here
                    pass
        else:
            for start in starts:
                score_batch(start)
        if not np.isfinite(out).all():
            bad = int((~np.isfinite(out)).sum())
            raise ModelError(f"the model produced {bad} non-finite scores (try dtype='float32')")
        return out


def _type_ids(enc: Any) -> list[list[int]] | None:
    types = enc.get("token_type_ids") if hasattr(enc, "get") else None
    return list(types) if types is not None else None


def sigmoid(scores: np.ndarray) -> np.ndarray:
    """Logits to probabilities (what sentence-transformers' ``CrossEncoder.predict`` returns by default)."""
    return (1.0 / (1.0 + np.exp(-np.asarray(scores, dtype=np.float64)))).astype(np.float32)
