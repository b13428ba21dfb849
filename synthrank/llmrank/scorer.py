"""`CausalLMReranker`: a causal LM as a pointwise reranker, scoring with P(true) of its next token.

score = P(true) / (P(true) + P(false)) = sigmoid(logit_true - logit_false), read from the
next-token distribution after the prompt (summing every single-token spelling of each word,
so an untuned model answering ``True`` is read right). Pairs are batched with left padding
(longest first, so batches carry little padding), position ids follow the attention mask, and
only the last position's logits are projected onto the vocabulary.

It loads a merged model folder, a base model plus a ``peft`` adapter, a training output
folder (``merged/`` or ``adapter/`` inside), a packaged GGUF name (converted once), or any HF
causal-LM name. It implements :class:`synthrank.rerank.base.PairScorer`, so evaluation, the
Haystack ranker and the PyTerrier reranker take it like any other model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.errors import ModelError
from synthrank.llmrank.prompt import PointwisePrompt, PromptEncoder, check_pairs
from synthrank.runtime import CAUSAL_LM, DTYPE_NAMES, load_causal_lm, resolve_device, resolve_precision, torch_dtype

logger = logging.getLogger(__name__)

METADATA_FILE = "llmrank.json"
"""Written beside every model the trainer saves: prompt settings, kind (merged/adapter), base model."""

SCORE_TYPES = ("probability", "log_odds")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``llmrank.json`` of a saved model folder, or ``{}`` for a folder synthrank did not write."""
    file = Path(path) / METADATA_FILE
    if not file.exists():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{file}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{file}: expected a JSON object")
    return data


def find_model_dir(path: str | Path) -> Path | None:
    """The loadable folder inside a training output (``merged/`` first, then ``adapter/``), or the folder itself."""
    p = Path(path).expanduser()
    if not p.is_dir():
        return None
    if (p / METADATA_FILE).exists() or (p / "adapter_config.json").exists() or (p / "config.json").exists():
        return p
    for sub in ("merged", "adapter"):
        if (p / sub / METADATA_FILE).exists():
            return p / sub
    return None


def is_llmrank_model(path: str | Path) -> bool:
    """True for folders the LoRA trainer wrote (or their parent output folder): what ``kind="auto"`` looks for."""
    found = find_model_dir(path)
    return found is not None and (found / METADATA_FILE).exists()


class CausalLMReranker:
    """Pointwise LLM reranker: P(true) for "is this passage relevant to this query?".

    Args:
        model: a model folder (merged, adapter or training output), a packaged GGUF name such as
            ``qwen2.5-coder-0.5b``, a ``.gguf`` file, or a hub id.
        adapter: a ``peft`` adapter folder to put on ``model`` (when ``model`` is the base).
        base_model: the base for an adapter folder, overriding the one recorded in it.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA when available.
        batch_size: pairs per forward pass.
        max_length: the most prompt tokens per pair; passages are cut to fit.
        prompt: prompt settings; default: those the model was trained with, else :class:`PointwisePrompt()`.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``; ``None``/``"auto"``: bfloat16 on CUDA and on CPUs with AMX
            (Intel Sapphire Rapids and later: bf16 matrix units), float32 on other CPUs.
        score: ``"probability"`` (P(true)/(P(true)+P(false)), in 0..1) or ``"log_odds"`` (its logit: same
            order, no float32 saturation near 0 and 1).
        merge_adapter: fold the adapter into the weights after loading (faster; scores equal to float rounding).
        share_prefix: a query's documents share one cached forward pass over the prompt up to the passage
            (the template head and the query), so reranking k documents encodes the query once, not k times.

    Example:
        >>> reranker = CausalLMReranker("runs/llmrank/model", batch_size=8)
        >>> reranker.score_pairs(["what damages the optic nerve"] * 2,
        ...                      ["Glaucoma damages the optic nerve.", "Insulin lowers blood sugar."])
        array([0.93, 0.04], dtype=float32)
    """

    def __init__(
        self,
        model: str | Path,
        *,
        adapter: str | Path | None = None,
        base_model: str | Path | None = None,
        device: str | None = None,
        batch_size: int = 8,
        max_length: int = 512,
        prompt: PointwisePrompt | None = None,
        dtype: str | None = None,
        score: str = "probability",
        merge_adapter: bool = True,
        share_prefix: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if score not in SCORE_TYPES:
            raise ValueError(f"score must be one of {SCORE_TYPES}, got {score!r}")
        self.model_name = str(model)
        self.adapter = str(adapter) if adapter is not None else None
        self.base_model = str(base_model) if base_model is not None else None
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.prompt = prompt
        self.dtype = dtype
        self.score = score
        self.merge_adapter = merge_adapter
        self.share_prefix = share_prefix
        self._model: Any = None
        self._tokenizer: Any = None
        self._encoder: PromptEncoder | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_loaded(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        prompt: PointwisePrompt | None = None,
        batch_size: int = 8,
        max_length: int = 512,
        score: str = "probability",
        share_prefix: bool = True,
        name: str = "in-memory",
    ) -> CausalLMReranker:
        """Wrap a model and tokenizer already in memory (e.g. right after training)."""
        self = cls(name, batch_size=batch_size, max_length=max_length, prompt=prompt, score=score, share_prefix=share_prefix)
        self._model = model.eval()
        self._tokenizer = tokenizer
        self.device = str(next(model.parameters()).device)
        self.prompt = prompt or PointwisePrompt()
        self._encoder = PromptEncoder(tokenizer, self.prompt, max_length)
        return self

    def __repr__(self) -> str:
        extra = f", adapter={self.adapter!r}" if self.adapter else ""
        return f"CausalLMReranker(model={self.model_name!r}{extra}, score={self.score!r})"

    def warm_up(self) -> None:
        """Load the tokenizer and model (once)."""
        if self._model is not None:
            return
        from synthrank.llmrank.convert import resolve_causal_lm

        device = resolve_device(self.device)
        precision = resolve_precision(self.dtype, device, CAUSAL_LM)

        base: str | Path
        adapter_dir: Path | None = Path(self.adapter).expanduser() if self.adapter else None
        meta: dict[str, Any] = {}
        found = find_model_dir(self.model_name) if adapter_dir is None else None
        if found is not None:
            meta = read_metadata(found)
            if (found / "adapter_config.json").exists():
                adapter_dir = found
        if adapter_dir is not None:
            if not (adapter_dir / "adapter_config.json").exists():
                raise ModelError(f"{adapter_dir} has no adapter_config.json: not a peft adapter folder")
            meta = meta or read_metadata(adapter_dir)
            if self.adapter:
                base = resolve_causal_lm(self.model_name)
            else:
                base = resolve_causal_lm(self.base_model or meta.get("base_model") or _adapter_base(adapter_dir))
        else:
            base = found if found is not None else resolve_causal_lm(self.model_name)
        if self.prompt is None:
            self.prompt = PointwisePrompt.from_dict(meta.get("prompt"))

        tokenizer_dir = adapter_dir if adapter_dir is not None and _has_tokenizer(adapter_dir) else base
        model, tokenizer = load_causal_lm(
            base, dtype=torch_dtype(precision), describe=f"a causal LM from {base}", tokenizer=tokenizer_dir
        )
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_dir))
            if self.merge_adapter:
                model = model.merge_and_unload()
        model.to(device).eval()
        self._model, self._tokenizer, self.device = model, tokenizer, device
        self._encoder = PromptEncoder(tokenizer, self.prompt, self.max_length)
        logger.info("loaded %s on %s (%s)", self, device, DTYPE_NAMES[precision])

    def close(self) -> None:
        """Release the model; a later call loads it again."""
        self._model = self._tokenizer = self._encoder = None

    @property
    def model(self) -> Any:
        self.warm_up()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self.warm_up()
        return self._tokenizer

    # ------------------------------------------------------------------ scoring

    def score_pairs(
        self, queries: Sequence[str], documents: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        """One score per (query, document) pair, float32; see the class docstring for the formula."""
        from tqdm.auto import tqdm

        check_pairs(queries, documents)
        if not queries:
            return np.zeros(0, dtype=np.float32)
        self.warm_up()
        assert self._encoder is not None and self.prompt is not None
        enc = self._encoder
        by_query: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            by_query.setdefault(q, []).append(i)
        share = self.share_prefix and not self.prompt.reasoning
        shared = {q: idx for q, idx in by_query.items() if share and len(idx) > 1}
        plain = [i for i, q in enumerate(queries) if q not in shared]
        log_odds = np.zeros(len(queries), dtype=np.float64)
        with tqdm(total=len(queries), desc="LLM scoring", unit="pair", disable=not show_progress) as bar:
            if plain:
                encoded = [enc.encode_prompt(queries[i], documents[i]) for i in plain]
                log_odds[plain] = self._log_odds(encoded, bar)
            for query, idx in shared.items():
                prefix = enc.encode_query_prefix(query)
                suffixes = [enc.encode_passage_suffix(len(prefix), documents[i]) for i in idx]
                log_odds[idx] = self._log_odds(suffixes, bar, prefix=prefix)
        if self.score == "log_odds":
            return log_odds.astype(np.float32)
        return (1.0 / (1.0 + np.exp(-log_odds))).astype(np.float32)

    def _log_odds(self, rows: Sequence[list[int]], bar: Any, *, prefix: list[int] | None = None) -> np.ndarray:
        """log P(true) - log P(false) after each row; with ``prefix``, rows continue one shared, cached prefix."""
        import copy

        import torch

        assert self._encoder is not None and self.prompt is not None
        answers = self._encoder.answers
        true_ids = torch.tensor(answers.true_ids)
        false_ids = torch.tensor(answers.false_ids)
        out = np.zeros(len(rows), dtype=np.float64)
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        with torch.inference_mode():
            cache = None
            if prefix is not None:
                ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
                cache = self._model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                chunk = [rows[i] for i in batch]
                if prefix is None:
                    if self.prompt.reasoning:
                        chunk = self._append_reasons(chunk)
                    inputs = self._batch_tensors(chunk)
                else:
                    inputs = self._batch_tensors(chunk, offset=len(prefix))
                    assert cache is not None
                    past = copy.deepcopy(cache)
                    past.batch_repeat_interleave(len(chunk))
                    inputs["past_key_values"] = past
                logits = forward_logits(self._model, inputs, keep=1)[:, -1, :].float().cpu()
                lt = torch.logsumexp(logits[:, true_ids], dim=-1)
                lf = torch.logsumexp(logits[:, false_ids], dim=-1)
                out[batch] = (lt - lf).double().numpy()
                bar.update(len(batch))
        return out

    def _pad_id(self) -> int:
        tok = self._tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id):
            if candidate is not None:
                return int(candidate)
        return 0

    def _batch_tensors(self, rows: Sequence[list[int]], *, offset: int = 0) -> dict[str, Any]:
        """Left-padded ids, mask and positions; ``offset`` > 0 continues a cached prefix of that many tokens."""
        import torch

        pad = self._pad_id()
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, row in enumerate(rows):
            ids[j, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[j, width - len(row) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0) + offset
        if offset:
            mask = torch.cat([torch.ones((len(rows), offset), dtype=torch.long), mask], dim=1)
        device = self.device or "cpu"
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": positions.to(device)}

    def _append_reasons(self, rows: Sequence[list[int]]) -> list[list[int]]:
        """Greedy one-line reasons (reasoning mode): each row gets its reason and the newline that opens the answer."""
        assert self.prompt is not None
        tok = self._tokenizer
        newline = tok.encode("\n", add_special_tokens=False)[-1:]
        inputs = self._batch_tensors(rows)
        inputs.pop("position_ids")
        generated = self._model.generate(
            **inputs,
            max_new_tokens=self.prompt.max_reasoning_tokens,
            do_sample=False,
            pad_token_id=self._pad_id(),
        )
        width = inputs["input_ids"].shape[1]
        stops = {int(t) for t in (tok.eos_token_id, getattr(tok, "pad_token_id", None)) if t is not None}
        out: list[list[int]] = []
        for row, gen in zip(rows, generated[:, width:].tolist(), strict=True):
            reason: list[int] = []
            for t in gen:
                if t in stops:
                    break
                reason.append(int(t))
                if "\n" in tok.decode([t]):
                    break
            if not reason or "\n" not in tok.decode(reason[-1:]):
                reason.extend(newline)
            out.append([*row, *reason])
        return out


def forward_logits(model: Any, inputs: dict[str, Any], *, keep: int) -> Any:
    """Logits of the last ``keep`` positions; asks the model to project only those when it can."""
    import inspect

    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    use_cache = "past_key_values" in inputs
    if "logits_to_keep" in inspect.signature(target.forward).parameters:
        return model(**inputs, logits_to_keep=keep, use_cache=use_cache).logits
    return model(**inputs, use_cache=use_cache).logits[:, -keep:, :]


def _adapter_base(adapter_dir: Path) -> str:
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelError(f"{adapter_dir}/adapter_config.json names no base model; pass base_model=")
    return str(base)


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists()
