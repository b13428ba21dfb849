"""`SynthRankRanker`: a synthrank-trained reranker as a Haystack ranker component."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import ComponentDevice

from synthrank.errors import DataError
from synthrank.rerank.base import PairScorer
from synthrank.rerank.fusion import fuse_scores
from synthrank.rerank.serving import AUTO, check_first_stage_setting, resolve_first_stage_weight, weight_text

logger = logging.getLogger(__name__)


def document_text(doc: Document, meta_fields_to_embed: list[str], separator: str) -> str:
    """The text a synthrank model sees for a Haystack document: embedded meta fields, then the content.

    With ``meta_fields_to_embed=["title"]`` and ``separator="\\n"`` this is exactly the core's
    ``title + "\\n" + text``, so scores equal the core evaluation's on the same pairs.
    """
    parts = [str(doc.meta[key]) for key in meta_fields_to_embed if doc.meta.get(key) not in (None, "")]
    if doc.content:
        parts.append(doc.content)
    return separator.join(parts)


def scale_scores(scores: np.ndarray, score_scale: str, calibration_factor: float | None) -> np.ndarray:
    """Map a model's raw scores to 0..1 the way Haystack's own components do for that kind of score.

    - ``calibration_factor`` given: ``sigmoid(calibration_factor * score)`` for any model (the
      ``calibration_factor`` of Haystack's ``TransformersSimilarityRanker``);
    - a cross-encoder's logit, an LLM reranker's log-odds, a fused z-score sum (``"logit"``):
      ``sigmoid(score)``, as Haystack's ``SentenceTransformersSimilarityRanker`` does with ``scale_score``;
    - a bi-encoder's cosine (``"cosine"``, in [-1, 1]): ``(cosine + 1) / 2``, as Haystack's embedding
      retrievers scale cosine scores: a sigmoid would squeeze every cosine into 0.27-0.73 (in practice
      0.55-0.67), so no threshold would mean anything; ``0.75`` now keeps cosine >= 0.5;
    - a dot product (``"dot_product"``): ``sigmoid(score / 100)``, as Haystack's embedding retrievers do.
    """
    from scipy.special import expit

    if calibration_factor is not None:
        return np.asarray(expit(calibration_factor * scores), dtype=np.float64)
    if score_scale == "cosine":
        return (scores + 1.0) / 2.0
    if score_scale == "dot_product":
        return np.asarray(expit(scores / 100.0), dtype=np.float64)
    return np.asarray(expit(scores), dtype=np.float64)


def load_scorer_for(
    model: str,
    *,
    kind: str,
    device: ComponentDevice | None,
    batch_size: int | None,
    max_length: int | None,
    fuse_with: str | None = None,
    fusion_weight: float = 0.0,
) -> PairScorer:
    """Load a core scorer on the device Haystack resolves (``None`` -> CUDA/MPS if available, else CPU).

    ``kind="llm"``, or ``"auto"`` on a folder the LoRA trainer wrote, gives the core's LLM reranker
    (log-odds scores, so ``scale_score`` yields P(true)); anything else goes to the core's ``load_scorer``.
    """
    resolved = ComponentDevice.resolve_device(device)
    options: dict[str, Any] = {"device": resolved.to_torch_str()}
    if batch_size is not None:
        options["batch_size"] = batch_size
    if max_length is not None:
        options["max_length"] = max_length
    from synthrank.rerank.factory import load_scorer

    return load_scorer(model, kind=kind, fuse_with=fuse_with, fusion_weight=fusion_weight, **options)


@component
class SynthRankRanker:
    """Reranks documents by their relevance to a query with a synthrank model (LCE cross-encoder or LLM reranker).

    The model is loaded in :meth:`warm_up` (run by the pipeline at start-up, or on the first :meth:`run`),
    so a wrong model path fails there, not at the first query; input documents are never modified:
    ranked copies carry the new ``score``. Duplicate documents (same id) are reduced to one, as
    Haystack's rankers do.

    Scores: with ``scale_score=True`` (the default) they lie in 0..1 on the scale Haystack's own
    components use for that kind of model: ``sigmoid(logit)`` for a cross-encoder or LLM reranker (as
    ``SentenceTransformersSimilarityRanker``), ``(cosine + 1) / 2`` for a bi-encoder (as Haystack's
    embedding retrievers scale cosine), or ``sigmoid(calibration_factor * raw)`` when ``calibration_factor``
    is set; ``score_threshold`` applies to that scale. With ``scale_score=False`` they are the raw
    logits / cosines.

    Usage example:

    ```python
    from haystack import Document
    from haystack_synthrank import SynthRankRanker

    ranker = SynthRankRanker(model="runs/medquad/model", top_k=3, meta_fields_to_embed=["title"])
    ranker.warm_up()
    docs = [Document(content="Glaucoma damages the optic nerve.", meta={"title": "Glaucoma"}),
            Document(content="Insulin lowers blood glucose.", meta={"title": "Insulin"})]
    result = ranker.run(query="what damages the optic nerve", documents=docs)
    print(result["documents"][0].content)
    ```
    """

    def __init__(
        self,
        *,
        model: str | Path,
        device: ComponentDevice | None = None,
        top_k: int = 10,
        query_prefix: str = "",
        document_prefix: str = "",
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        scale_score: bool = True,
        calibration_factor: float | None = None,
        score_threshold: float | None = None,
        batch_size: int = 16,
        max_length: int | None = None,
        kind: str = "auto",
        fuse_with: str | None = None,
        fusion_weight: float = 0.0,
        first_stage_weight: float | str = "auto",
    ) -> None:
        """
        Create the ranker; nothing is loaded until :meth:`warm_up`.

        :param model: a synthrank model directory, or any name the core's ``load_scorer`` takes.
        :param device: where to run; ``None`` picks a GPU when one is available.
        :param top_k: the maximum number of documents to return.
        :param query_prefix: text put before the query (only if the model was trained with it).
        :param document_prefix: text put before each document's text.
        :param meta_fields_to_embed: meta fields put before the content, e.g. ``["title"]``.
        :param embedding_separator: joins the embedded meta fields and the content.
        :param scale_score: map raw scores to 0..1: ``sigmoid`` of a logit, ``(cosine + 1) / 2`` of a
            bi-encoder's cosine (see the class docstring).
        :param calibration_factor: when set (and ``scale_score``), scores are ``sigmoid(calibration_factor * raw)``
            whatever the model, as with Haystack's ``TransformersSimilarityRanker`` (e.g. ``10`` spreads
            cosines over 0..1 around cosine 0).
        :param score_threshold: drop documents scoring below it (after scaling).
        :param batch_size: pairs per forward pass (16, the default of Haystack's own rankers).
        :param max_length: token limit of a (query, document) pair; ``None`` keeps the model's default.
        :param kind: ``"auto"`` (detected from the model directory: an LCE cross-encoder, a LoRA/merged LLM
            reranker from ``synthrank llmrank train``, or a plain encoder as bi-encoder), ``"cross-encoder"``,
            ``"bi-encoder"`` or ``"llm"`` (any causal LM as a pointwise true/false reranker).
        :param fuse_with: a second model (e.g. ``"minilm"``, the zero-shot bi-encoder) whose per-query
            z-scored scores are mixed in with weight ``fusion_weight`` (``synthrank run`` reports the weight it
            picked on held-out synthetic data in ``evaluation.json``); scores are then z-score sums.
        :param fusion_weight: the second model's weight in [0, 1].
        :param first_stage_weight: each input document's own ``score`` (e.g. from a BM25 retriever) mixed in by
            per-query z-scores with this weight in [0, 1]: ``w x z(score) + (1 - w) x z(model)``; scores are then
            z-score sums. ``"auto"`` (the default): the weight ``synthrank run`` picked for BM25 on its synthetic
            queries and wrote into the model folder (``synthrank_serving.json``; the one-standard-error rule of
            :func:`synthrank.rerank.first_stage.pick_first_stage_weight`), 0 for a folder without one; documents
            without a score are then ranked by the model alone, with a warning. Pass ``0`` when the documents
            come from a retriever other than BM25.
        :raises ValueError: if ``top_k``, ``batch_size`` or ``calibration_factor`` is not positive, or
            ``fusion_weight`` or ``first_stage_weight`` is outside [0, 1] (``first_stage_weight`` may be ``"auto"``).
        """
        if top_k <= 0:
            raise ValueError(f"top_k must be > 0, but got {top_k}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, but got {batch_size}")
        if not 0.0 <= fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must lie in [0, 1], but got {fusion_weight}")
        first_stage_weight = check_first_stage_setting(first_stage_weight)
        if calibration_factor is not None and not calibration_factor > 0:
            raise ValueError(f"calibration_factor must be > 0 (or None), but got {calibration_factor}")
        self.model = str(model)
        self.device = device
        self.top_k = top_k
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.scale_score = scale_score
        self.calibration_factor = calibration_factor
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.max_length = max_length
        self.kind = kind
        self.fuse_with = fuse_with
        self.fusion_weight = fusion_weight
        self.first_stage_weight = first_stage_weight
        self._scorer: PairScorer | None = None
        self._served_weight: float | None = None  # first_stage_weight resolved ("auto": the model folder's)

    def warm_up(self) -> None:
        """Load the model and its weights (once), so load errors surface here and the first query pays nothing."""
        if self._scorer is None:
            scorer = load_scorer_for(
                self.model,
                kind=self.kind,
                device=self.device,
                batch_size=self.batch_size,
                max_length=self.max_length,
                fuse_with=self.fuse_with,
                fusion_weight=self.fusion_weight,
            )
            load = getattr(scorer, "warm_up", None)
            if callable(load):
                load()
            self._scorer = scorer
        self._first_stage_weight()  # a bad synthrank_serving.json fails here too

    def close(self) -> None:
        """Release the model; a later :meth:`warm_up` loads it again."""
        self._scorer = None
        self._served_weight = None

    def _first_stage_weight(self) -> float:
        if self._served_weight is None:
            self._served_weight = resolve_first_stage_weight(self.first_stage_weight, self.model)
        return self._served_weight

    def to_dict(self) -> dict[str, Any]:
        """Serialise every init parameter."""
        return default_to_dict(
            self,
            model=self.model,
            device=self.device.to_dict() if self.device is not None else None,
            top_k=self.top_k,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            scale_score=self.scale_score,
            calibration_factor=self.calibration_factor,
            score_threshold=self.score_threshold,
            batch_size=self.batch_size,
            max_length=self.max_length,
            kind=self.kind,
            fuse_with=self.fuse_with,
            fusion_weight=self.fusion_weight,
            first_stage_weight=self.first_stage_weight,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthRankRanker:
        """Rebuild the component from :meth:`to_dict`'s output."""
        data = copy.deepcopy(data)
        init_params = data.get("init_parameters", {})
        if init_params.get("device") is not None:
            init_params["device"] = ComponentDevice.from_dict(init_params["device"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        scale_score: bool | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """
        Rerank ``documents`` for ``query``.

        :param query: the query; an empty one ranks nothing: the deduplicated documents come back in
            their input order, unscored and without the ``top_k`` cut, with a warning, as Haystack's
            ``LLMRanker`` does.
        :param documents: candidates, e.g. from a BM25 retriever; each needs content or an embedded meta field.
        :param top_k: overrides the init ``top_k``.
        :param scale_score: overrides the init ``scale_score``.
        :param score_threshold: overrides the init ``score_threshold``.
        :returns: ``documents``: copies of the input documents with the new ``score``, best first.
        :raises ValueError: on a non-positive ``top_k``.
        :raises DataError: when a document has no text to score (naming its id).
        """
        top_k = top_k if top_k is not None else self.top_k
        scale_score = scale_score if scale_score is not None else self.scale_score
        score_threshold = score_threshold if score_threshold is not None else self.score_threshold
        if top_k <= 0:
            raise ValueError(f"top_k must be > 0, but got {top_k}")
        if not documents:
            return {"documents": []}
        unique = _deduplicate(documents)
        if not isinstance(query, str) or not query.strip():
            # as Haystack's LLMRanker: no top_k cut, since cutting unranked documents could drop relevant ones
            logger.warning("SynthRankRanker got an empty query: returning the %d documents unranked", len(unique))
            return {"documents": unique}
        texts = [document_text(d, self.meta_fields_to_embed, self.embedding_separator) for d in unique]
        empty = [d.id for d, t in zip(unique, texts, strict=True) if not t.strip()]
        if empty:
            raise DataError(
                f"SynthRankRanker: {len(empty)} document(s) have no content to score, e.g. ids {empty[:5]}",
                field="content",
            )
        unscored = [d.id for d in unique if d.score is None or not math.isfinite(d.score)]
        w = self._first_stage_weight()
        if w and unscored:
            if self.first_stage_weight != AUTO:
                raise DataError(
                    f"SynthRankRanker: first_stage_weight needs each document's retriever score; {len(unscored)} "
                    f"have none, e.g. ids {unscored[:5]}",
                    field="score",
                )
            logger.warning("SynthRankRanker: %d document(s) have no retriever score (e.g. ids %s): ranked by the "
                           "model alone, without the model folder's first-stage weight %s", len(unscored),
                           unscored[:5], weight_text(w))  # fmt: skip
            w = 0.0
        self.warm_up()
        assert self._scorer is not None
        queries = [self.query_prefix + query] * len(unique)
        scores = np.asarray(
            self._scorer.score_pairs(queries, [self.document_prefix + t for t in texts]), dtype=np.float64
        )
        if scores.shape != (len(unique),):
            raise ValueError(f"the scorer returned {scores.shape} scores for {len(unique)} documents")
        scale = getattr(self._scorer, "score_scale", "logit")
        if w:
            first = np.array([d.score for d in unique], dtype=np.float64)
            scores = fuse_scores(queries, [scores, first], [1.0 - w, w]).astype(np.float64)
            scale = "logit"  # a z-score sum, as a fused model's
        if scale_score:
            scores = scale_scores(scores, scale, self.calibration_factor)
        ranked = [replace(d, score=float(s)) for d, s in zip(unique, scores, strict=True)]
        ranked.sort(key=lambda d: -(d.score if d.score is not None else -math.inf))
        if score_threshold is not None:
            ranked = [d for d in ranked if d.score is not None and d.score >= score_threshold]
        return {"documents": ranked[:top_k]}


def _deduplicate(documents: list[Document]) -> list[Document]:
    """One document per id, keeping the highest-scoring duplicate (Haystack's rankers do the same)."""
    best: dict[str, Document] = {}
    for doc in documents:
        kept = best.get(doc.id)
        if kept is None or (doc.score if doc.score is not None else -math.inf) > (
            kept.score if kept.score is not None else -math.inf
        ):
            best[doc.id] = doc
    return list(best.values())
