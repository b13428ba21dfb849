"""The scorecard: synthrank's default recipe against the zero-shot encoder and the peers' recipes, on every corpus.

For each corpus in ``../shared/data`` and each LLM budget (the quickstart's 32 passages and a ~4x larger one),
one ``synthrank run --until label`` writes the training data from the corpus passages alone (the corpus's
queries and qrels only evaluate). Every row then trains on that same data, backbone and budget, with 3 seeds,
and reranks BM25's top-30 for the corpus's real judged queries (MedQuAD: a fixed seeded 300 of
``test_sample1000``; the others: all). Rows:

* ``bm25``: the first stage; ``zero-shot``: the backbone (all-MiniLM-L6-v2) as a cosine bi-encoder;
* ``synthrank``: the run's own train step on the judged recipe (the default before #19, pinned as
  ``JUDGED_RECIPE``: LLM-labelled groups, LCE, the bi-encoder merged half back with its base), the seed varied;
  ``synthrank@quick`` is today's default recipe (``--variants quick=benchmarks/configs/scorecard-quick.yaml``:
  no judge, three queries per call, 20 passages, 128 tokens);
* ``inpars``: InPars-style (Bonifacio et al., 2022), rebuilt: the same synthetic queries filtered to the half the
  LLM scored best (here the judge's P(relevant) of the source passage: InPars v1 ranks by the generator's own
  log-probability, which a chat endpoint does not return), the source passage as the positive and BM25
  candidates as negatives, sampled anew each epoch, pointwise binary cross-entropy (monoT5's true/false), one
  negative per positive, on a cross-encoder of the same backbone;
* ``gpl``: GPL-style (Wang et al., 2022), rebuilt: the bi-encoder itself tuned with MarginMSE on
  (query, source passage, judged candidate) triples, the teacher margin being the LLM judge's log-odds margin
  (GPL's teacher is a cross-encoder; here the judge), no merge with the base;
* ``st``: sentence-transformers' own recipe: ``util.mine_hard_negatives`` with the backbone as the embedder
  (5 negatives, ``labeled-pair``) over the same training queries and positives, then ``CrossEncoderTrainer``
  with its default loss (BinaryCrossEntropyLoss) on ``CrossEncoder(backbone, num_labels=1)``.

MedQuAD is run twice: as is, and as ``medquad-excl`` with every passage relevant to a ``test_sample1000``
question kept out of generation (``generate.exclude_ids``), so no number leans on queries written from test
answers.

Levers are measured as variants (``--variants realistic=benchmarks/configs/scorecard-realistic.yaml``): each
variant's YAML is laid over the run config, its own ``synthrank run`` writes its own data at the same budget, and
its row ``synthrank@NAME`` trains with the default recipe on that data; a variant whose YAML holds only a
``train`` section is a training lever: it costs no LLM call, reuses the default data, and trains with its
settings laid over the run's; with ``scorecard: {data: OTHER}`` it trains on variant OTHER's data instead (a
training lever of that recipe); a lever that loses stays in the table.

Every result is written to the JSON as soon as it exists and a rerun skips it; the LLM runs resume as
``synthrank run`` does. Phases: ``data`` (the LLM runs), ``rows`` (training and evaluation), ``report``
(markdown table and plot from the JSON). Per-query nDCG@10 is kept for every row and seed; the report averages
each query over seeds and tests the default recipe against the zero-shot encoder and the best peer with paired
t-tests.

    .venv/bin/python benchmarks/scorecard.py --phase all   # hours on 2 CPU cores; rerun to resume
    .venv/bin/python benchmarks/scorecard.py --phase report
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SYNTHRANK_SHARED_DATA") or REPO.parent / "shared" / "data")
RESULTS = REPO / "benchmarks" / "results"

logger = logging.getLogger("scorecard")

ROWS = ("synthrank", "inpars", "gpl", "st")
PEERS = ("inpars", "gpl", "st")
# The scorecard's base data: the judged recipe that was `synthrank run`'s default until #19 (LLM judge on, one query
# per call, 160 answer tokens, 256-token training). The peers need its judge (InPars filters by the judge's
# P(relevant), GPL distils its margins), and pinning it keeps every earlier run folder valid now that the
# product's default is the `quick` recipe (benchmarks/configs/scorecard-quick.yaml): its row synthrank@quick.
JUDGED_RECIPE: dict[str, Any] = {
    "generate": {"n_per_type": 1, "max_tokens": 160},
    "label": {"enabled": True},
    "train": {"max_length": 256},
}
ROW_LABELS = {
    "bm25": "BM25",
    "zero-shot": "zero-shot MiniLM",
    "synthrank": "synthrank, judged recipe (the default before #19)",
    "inpars": "InPars-style",
    "gpl": "GPL-style",
    "st": "sentence-transformers recipe",
    "zero-shot+bm25": "zero-shot MiniLM + BM25 fusion",
    "zero-shot+bm25se": "zero-shot MiniLM + BM25 fusion (1-SE weight)",
    "zero-shot+bm25bag": "zero-shot MiniLM + BM25 fusion (bagged 1-SE weight)",
}
DEFAULT_ROW = "synthrank@quick-2ep+bm25se"
"""What ``synthrank run`` trains and the adapters serve: the quick recipe (the run's default since #19) trained for
2 epochs (lever ``quick-2ep``, the default since it matched 3 epochs on this scorecard), fused with BM25 at the
weight the run picks on its own synthetic queries (``first_stage_weight="auto"`` since #18)."""
LEVER_BASE_ROW = "synthrank@quick"
"""The recipe the levers vary (their YAMLs lay quick's settings, 3 epochs): each lever is tested against it."""
FUSIONS: dict[str, str] = {"+bm25": "weight", "+bm25se": "weight_1se", "+bm25bag": "weight_bagged"}
"""Fused-row suffix -> the weight of the run's ``bm25-weight`` cell it uses: the best on the synthetic queries, the
least BM25 within one standard error of the best (the one-standard-error rule), or that rule's choice averaged over
resamples of the source passages (bagged)."""


def fusion_of(row: str) -> str | None:
    return next((suffix for suffix in FUSIONS if row.endswith(suffix)), None)


def unfused(row: str) -> str:
    suffix = fusion_of(row)
    return row.removesuffix(suffix) if suffix else row


@dataclass(frozen=True)
class Corpus:
    """One scorecard corpus: where its passages are, which judged split evaluates, how many queries of it."""

    name: str
    folder: str
    split: str
    eval_queries: int | None = None
    exclude_eval_relevant: bool = False

    def path(self) -> Path:
        return SHARED / self.folder


CORPORA: dict[str, Corpus] = {
    "medquad": Corpus("medquad", "medquad", "test_sample1000", 300),
    "medquad-excl": Corpus("medquad-excl", "medquad", "test_sample1000", 300, exclude_eval_relevant=True),
    "beir-scifact": Corpus("beir-scifact", "beir-scifact", "test"),
    "agentset-msmarco-subset": Corpus("agentset-msmarco-subset", "agentset-msmarco-subset", "test"),
    "vaswani": Corpus("vaswani", "vaswani", "test"),
}
BUDGETS: dict[str, int] = {"default": 32, "large": 128}  # passages the LLM writes queries for


# ---------------------------------------------------------------------------------------------- results file


class Scorecard:
    """The results JSON, rewritten (atomically) after every cell so a killed run keeps what it measured."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        self.data.setdefault("runs", {})
        self.data.setdefault("cells", {})
        self.data["meta"] = {**self.data.get("meta", {}), **meta}

    def has(self, key: str) -> bool:
        return key in self.data["cells"]

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.data["cells"][key] = value
        self.save()

    def put_run(self, key: str, value: dict[str, Any]) -> None:
        self.data["runs"][key] = value
        self.save()

    def save(self) -> None:
        from synthrank.data import write_json

        write_json(self.path, self.data)


def cell_key(corpus: str, budget: str | None, row: str, seed: int | None = None) -> str:
    parts = [corpus, budget or "-", row] + ([f"seed{seed}"] if seed is not None else [])
    return "/".join(parts)


# ---------------------------------------------------------------------------------------------- data phase


def eval_dataset(corpus: Corpus) -> Any:
    from synthrank.data import load_dataset
    from synthrank.pipeline import subsample_queries

    dataset = load_dataset(corpus.path(), split=corpus.split)
    return subsample_queries(dataset, corpus.eval_queries, seed=0)


def write_exclusions(corpus: Corpus, path: Path) -> Path:
    """Every passage relevant to any judged question of the split (all of it, not only the evaluated sample)."""
    from synthrank.data import load_dataset

    dataset = load_dataset(corpus.path(), split=corpus.split)
    ids = sorted({d for rels in dataset.qrels.values() for d, grade in rels.items() if grade > 0})
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# passages relevant to a {corpus.folder} {corpus.split} question: kept out of generation\n"
    path.write_text(text + "".join(f"{d}\n" for d in ids), encoding="utf-8")
    return path


def run_dir(work: Path, corpus: str, budget: str, variant: str | None = None) -> Path:
    return work / (f"{corpus}-{budget}" + (f"@{variant}" if variant else ""))


def corpus_of_run(folder: Path) -> str:
    """The corpus a run folder (``<corpus>-<budget>[@lever]``, :func:`run_dir`) belongs to: the longest corpus name
    it starts with, so ``medquad-excl-large`` is MedQuAD-excl's, not MedQuAD's. ValueError for another folder."""
    name = max((c for c in CORPORA if folder.name.startswith(c + "-")), key=len, default=None)
    if name is None:
        raise ValueError(f"{folder.name} is not a scorecard run folder (<corpus>-<budget>[@lever])")
    return name


def data_variant(variant: str | None, variants: dict[str, dict[str, Any]]) -> str | None:
    """The variant whose data a row trains on: a training-only lever trains on the default data, or on another
    variant's with ``scorecard: {data: NAME}`` (a training lever of that recipe: no LLM call of its own)."""
    if variant is None:
        return None
    overlay = variants.get(variant, {})
    shared = (overlay.get("scorecard") or {}).get("data")
    if shared:
        return str(shared)
    if set(overlay) <= {"train"}:
        return None
    return variant


def needs_base_data(rows: Sequence[str], variants: dict[str, dict[str, Any]]) -> bool:
    """Whether any asked row trains on the judged recipe's own data: the recipe itself, a peer, a training lever
    (no data of its own), or a lever that spends as many calls as the judged run made."""
    for row in rows:
        recipe, variant = split_row(unfused(row))
        if recipe != "synthrank" or data_variant(variant, variants) is None:
            return True
        if variant and ((variants.get(variant) or {}).get("scorecard") or {}).get("equal_calls"):
            return True
    return False


def split_row(row: str) -> tuple[str, str | None]:
    """``synthrank@realistic`` -> (``synthrank``, ``realistic``): a recipe trained on a variant's data."""
    recipe, _, variant = row.partition("@")
    return recipe, variant or None


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_config(corpus: Corpus, passages: int, work: Path, base: dict[str, Any]) -> dict[str, Any]:
    """The run's config: the defaults, the scorecard's own overrides (``--run-config``), corpus and budget."""
    import copy

    config = copy.deepcopy(base)
    config["corpus"] = str(corpus.path())
    config.setdefault("generate", {})["max_passages"] = passages
    if corpus.exclude_eval_relevant:
        config["generate"]["exclude_ids"] = str(write_exclusions(corpus, work / f"{corpus.name}-exclude.txt"))
    return config


def llm_usage(folder: Path) -> dict[str, Any]:
    """LLM calls of the run's generate and label steps, counted from its artifacts, and their cost in minutes.

    Calls are counted from what the steps wrote (one generation call per slot, one judgement per labelled pair
    and vote), so a run resumed after a kill counts every call once; seconds per call are the step's wall time
    over the calls its last invocation made (cache hits cost nothing there but were paid by an earlier one), so
    ``llm_minutes`` is the budget's cost uncached, on the machine and load it ran on.
    """
    config = json.loads((folder / "run_config.json").read_text()) if (folder / "run_config.json").exists() else {}
    stats = json.loads((folder / "generate_stats.json").read_text()) if (folder / "generate_stats.json").exists() else {}
    votes = int((config.get("label") or {}).get("self_consistency") or 1)
    calls = {"generate": int(stats.get("slots") or 0),
             "label": _count_lines(folder / "labels.jsonl") * votes}  # fmt: skip
    steps: dict[str, Any] = {}
    for name in ("generate", "label"):
        marker = folder / ".steps" / f"{name}.json"
        usage = (json.loads(marker.read_text()).get("summary") or {}).get("usage") or {} if marker.exists() else {}
        made = int(usage.get("calls") or 0)
        per_call = float(usage.get("wall_seconds") or 0.0) / made if made else None
        steps[name] = {"calls": calls[name], "seconds_per_call": per_call,
                       "minutes": per_call * calls[name] / 60 if per_call is not None else None,
                       "last_invocation": {k: usage.get(k) for k in ("calls", "cache_hits", "wall_seconds")}}  # fmt: skip
    minutes = [s["minutes"] for s in steps.values() if s["calls"]]
    return {"steps": steps, "calls": sum(calls.values()),
            "llm_minutes": sum(minutes) if minutes and all(m is not None for m in minutes) else None}  # fmt: skip


def variant_passages(overlay: dict[str, Any], corpus: Corpus, budget: str, card: Scorecard) -> int | None:
    """Passages of a variant's run: the budget's; with ``scorecard: {passages: {default: 20, large: 80}}`` its own
    (a recipe that makes fewer, richer calls); or with ``scorecard: {equal_calls: true}`` as many as the default
    run's LLM calls at this budget (a lever that spends no call on judging writes that many more queries); None
    when the default run it depends on has not been made."""
    own = (overlay.get("scorecard") or {}).get("passages") or {}
    if budget in own:
        return int(own[budget])
    if not (overlay.get("scorecard") or {}).get("equal_calls"):
        return BUDGETS[budget]
    run = card.data["runs"].get(f"{corpus.name}/{budget}")
    calls = ((run or {}).get("usage") or {}).get("calls")
    return int(calls) if calls else None


def lever_config(config: dict[str, Any], corpus: str) -> dict[str, Any]:
    """A run config with a lever laid over it, minus the scorecard's own key; ``scorecard: {per_corpus: {NAME:
    {...}}}`` lays settings over that corpus's run only (what a user of that corpus would say, such as
    ``generate.search_task``)."""
    own = ((config.get("scorecard") or {}).get("per_corpus") or {}).get(corpus) or {}
    return deep_merge({k: v for k, v in config.items() if k != "scorecard"}, own)


def run_data(corpus: Corpus, budget: str, work: Path, base_config: dict[str, Any], card: Scorecard,
             synthrank_cmd: Sequence[str], variant: str | None = None,
             passages: int | None = None) -> bool:  # fmt: skip
    """``synthrank run --until label`` for one corpus and budget (resumes); False when it failed."""
    import yaml

    folder = run_dir(work, corpus.name, budget, variant)
    folder.mkdir(parents=True, exist_ok=True)
    passages = passages or BUDGETS[budget]
    config = run_config(corpus, passages, work, lever_config(base_config, corpus.name))
    config_path = folder.parent / f"{folder.name}.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    cmd = [*synthrank_cmd, "run", "--config", str(config_path), "--output-dir", str(folder), "--until", "label",
           "--no-progress"]  # fmt: skip
    logger.info("%s/%s: %s", corpus.name, budget, " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        logger.error("%s/%s: synthrank run failed (exit %d); rerun to resume", corpus.name, budget, proc.returncode)
        return False
    counts = {name: _count_lines(folder / name) for name in ("queries.jsonl", "groups.jsonl")}
    card.put_run(f"{corpus.name}/{budget}" + (f"@{variant}" if variant else ""), {
        "command": " ".join(cmd), "config": config, "passages": passages, **counts,
        "usage": llm_usage(folder), "seconds_this_invocation": round(time.perf_counter() - t0, 1),
    })  # fmt: skip
    return True


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) if path.exists() else 0


# ---------------------------------------------------------------------------------------------- training rows


def lever_train_overlay(variant: str | None, variants: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The train settings a lever lays over its data folder's: its own, and first, for a lever training on another
    lever's data, that lever's (its dev split among them: a folder written before the split had a unit holds none,
    and would otherwise fall back to the query split its data lever's own row no longer uses)."""
    if not variant:
        return None
    own = (variants.get(variant) or {}).get("train") or {}
    data = data_variant(variant, variants)
    if data and data != variant:
        return deep_merge((variants.get(data) or {}).get("train") or {}, own)
    return own or None


def training_split(
    folder: Path, overlay: dict[str, Any] | None = None, keep: Callable[[list[Any]], list[Any]] | None = None
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """The run's own train/dev split of its groups, and its train section with a lever's ``overlay`` laid over it.

    The held-out unit is the section's ``dev_holdout``; a folder made before passages were the unit (no such key)
    keeps its query split unless the overlay names one. ``keep`` picks a subset of the groups before the split
    (a diagnostic's subset is then split as the run would split it)."""
    from synthrank.data import read_groups
    from synthrank.pipeline import split_dev

    section = deep_merge(json.loads((folder / "run_config.json").read_text())["train"], overlay or {})
    groups = read_groups(folder / "groups.jsonl")
    if keep is not None:
        groups = keep(groups)
    holdout = section.get("dev_holdout", "query")
    train, dev = split_dev(groups, float(section["dev_fraction"]), int(section["seed"]), holdout=holdout)
    return train, dev, {**section, "dev_holdout": holdout}


def trained_holdout(cell: dict[str, Any], folder: Path) -> str:
    """The dev split a cell was trained on: recorded since passages became a unit; before, the folder's own."""
    recorded = cell.get("dev_holdout")
    if recorded:
        return str(recorded)
    return str(json.loads((folder / "run_config.json").read_text())["train"].get("dev_holdout", "query"))


def read_labels(folder: Path) -> dict[str, dict[str, float]]:
    """query id -> document id -> the judge's P(relevant) (every pair it judged)."""
    out: dict[str, dict[str, float]] = {}
    path = folder / "labels.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("probability") is not None:
            out.setdefault(str(rec["query_id"]), {})[str(rec["doc_id"])] = float(rec["probability"])
    return out


def inpars_groups(folder: Path, train_qids: set[str]) -> list[Any]:
    """InPars: the source passage positive, BM25 negatives, queries kept by the LLM's score (the top half)."""
    from synthrank.data import read_groups

    labels = read_labels(folder)
    mined = [g for g in read_groups(folder / "mined_groups.jsonl") if g.query_id in train_qids or not train_qids]
    score = {g.query_id: labels.get(g.query_id, {}).get(g.positive.doc_id, 0.0) for g in mined}
    ranked = sorted(mined, key=lambda g: (-score[g.query_id], g.query_id))
    return ranked[: max(1, math.ceil(len(ranked) / 2))]


def gpl_groups(folder: Path, train_qids: set[str]) -> list[Any]:
    """GPL: (query, source passage, judged candidate) with the judge's probabilities as the teacher's scores."""
    from synthrank.data import Passage, read_groups

    labels = read_labels(folder)
    out = []
    for g in read_groups(folder / "mined_groups.jsonl"):
        judged = labels.get(g.query_id, {})
        if (train_qids and g.query_id not in train_qids) or g.positive.doc_id not in judged:
            continue
        negatives = [replace(n, probability=judged[n.doc_id]) for n in g.negatives if n.doc_id in judged]
        if negatives:
            positive: Passage = replace(g.positive, probability=judged[g.positive.doc_id])
            out.append(replace(g, positive=positive, negatives=negatives))
    return out


def train_ours(groups: Sequence[Any], out: Path, section: dict[str, Any], seed: int, dev: Any, **changes: Any) -> Path:
    from synthrank.pipeline import train_config_from_section
    from synthrank.train import train_reranker

    config = replace(train_config_from_section(section), seed=seed, save_every=0, **changes)
    result = train_reranker(list(groups), out, config, dev=dev, show_progress=False)
    return Path(result.model_dir)


def train_st(groups: Sequence[Any], corpus_texts: list[str], out: Path, section: dict[str, Any], seed: int) -> Path:
    """sentence-transformers' recipe, as its docs train a reranker: mine with the embedder, BCE cross-encoder."""
    import datasets
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.util import mine_hard_negatives

    from synthrank.models import resolve_encoder

    model_dir = out / "model"
    if (model_dir / "config.json").exists():
        return model_dir
    backbone = str(resolve_encoder(section.get("model") or "minilm"))
    pairs_file = out.parent / "st_pairs.jsonl"  # mined once per run (deterministic), shared by the seeds
    if not pairs_file.exists():
        embedder = SentenceTransformer(backbone, device="cpu")
        pairs = datasets.Dataset.from_dict({"query": [g.query for g in groups],
                                            "answer": [g.positive.text for g in groups]})  # fmt: skip
        mined = mine_hard_negatives(pairs, embedder, corpus=corpus_texts, num_negatives=5,
                                    output_format="labeled-pair", use_faiss=False, verbose=False)  # fmt: skip
        pairs_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = pairs_file.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in mined.to_list()), encoding="utf-8")
        tmp.replace(pairs_file)
        del embedder
    rows = [json.loads(line) for line in pairs_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = datasets.Dataset.from_list(rows)
    model = CrossEncoder(backbone, num_labels=1, max_length=int(section.get("max_length") or 256), device="cpu")
    args = CrossEncoderTrainingArguments(
        output_dir=str(out / "trainer"), num_train_epochs=int(section.get("epochs") or 3),
        per_device_train_batch_size=16, learning_rate=2e-5, warmup_ratio=0.1, seed=seed, save_strategy="no",
        report_to="none", logging_steps=50, disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    CrossEncoderTrainer(model=model, args=args, train_dataset=train).train()  # loss=None: its default (BCE)
    model.save_pretrained(str(model_dir))
    shutil.rmtree(out / "trainer", ignore_errors=True)
    return model_dir


# ---------------------------------------------------------------------------------------------- evaluation


class Evaluator:
    """One corpus's evaluation: BM25 indexed once, the same queries and depth for every row."""

    def __init__(self, corpus: Corpus, top_k: int, dtype: str) -> None:
        from synthrank.retrieve import InMemoryBM25

        self.dataset = eval_dataset(corpus)
        self.top_k = top_k
        self.dtype = dtype
        self.bm25 = InMemoryBM25()
        self.bm25.index(list(self.dataset.corpus.values()))
        self._zero_shot: tuple[dict[str, Any], dict[str, dict[str, float]]] | None = None

    def run(self, name: str, scorer: Any | None) -> dict[str, Any]:
        return self.run_with_ranking(name, scorer)[0]

    def zero_shot(self) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
        """The zero-shot encoder's cell and ranking, scored once per corpus (its row and every fused zero-shot row)."""
        if self._zero_shot is None:
            self._zero_shot = self.run_with_ranking("zero-shot", _zero_shot(self))
        return self._zero_shot

    def run_with_ranking(self, name: str, scorer: Any | None) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
        """The cell (metrics, per-query nDCG@10) and the reranked run itself, for fusing it with BM25's."""
        from synthrank.evaluate import evaluate_systems

        t0 = time.perf_counter()
        report = evaluate_systems(self.dataset, self.bm25, {name: scorer} if scorer is not None else {},
                                  split="test", top_k=self.top_k, metrics=self.metrics)  # fmt: skip
        system = report.systems[-1]
        self.first_stage = report.systems[0].run
        return self.cell(system.evaluation, time.perf_counter() - t0), system.run

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("nDCG@10", "MRR@10", f"Recall@{self.top_k}")

    def cell(self, evaluation: Any, seconds: float) -> dict[str, Any]:
        return {"metrics": evaluation.aggregate, "per_query": evaluation.per_query["nDCG@10"],
                "queries": evaluation.num_queries, "seconds": round(seconds, 1)}  # fmt: skip

    def fused_with_bm25(self, ranking: dict[str, dict[str, float]], weight: float) -> dict[str, Any]:
        """The cell of ``weight`` x z(BM25) + (1 - weight) x z(model) per query over the same top-k."""
        from synthrank.evaluate import evaluate_run
        from synthrank.rerank.first_stage import fuse_with_first_stage

        fused = fuse_with_first_stage(self.first_stage, ranking, weight)
        return {**self.cell(evaluate_run(fused, self.dataset.qrels, self.metrics), 0.0), "bm25_weight": weight}

    def scorer(self, model_dir: Path | str) -> Any:
        from synthrank.rerank import load_scorer

        return load_scorer(model_dir, batch_size=64, dtype=self.dtype)


def evaluation_dtype() -> str:
    from synthrank.pipeline.stages import evaluation_dtype as pick

    return pick("auto")


# ---------------------------------------------------------------------------------------------- BM25 fusion lever


def pick_bm25_weight(folder: Path, corpus: dict[str, Any], scorer: Any) -> dict[str, Any]:
    """The BM25 fusion weights of a run, picked on its own synthetic queries, never on an evaluation query.

    The queries the judge kept (groups.jsonl; their positives as the relevant passages) are reranked over
    their mined BM25 top-k by the *untuned* zero-shot encoder, which none of them trained, so the weight is not
    biased towards a model that saw these positives; the same weights then fuse every trained row. ``weight`` is
    the best on those queries, ``weight_1se`` the one-standard-error rule's choice
    (:func:`synthrank.rerank.first_stage.pick_first_stage_weight`, what the product uses), ``weight_bagged`` that
    rule averaged over 200 resamples of the source passages
    (:func:`synthrank.rerank.first_stage.bagged_one_standard_error_weight`).
    """
    from synthrank.rerank.first_stage import pick_first_stage_weight, source_passages_of_run, synthetic_queries_of_run

    candidates, relevant, texts = synthetic_queries_of_run(folder, corpus)
    picked = pick_first_stage_weight(candidates, relevant, scorer, texts, rule="bagged",
                                     units=source_passages_of_run(folder))  # fmt: skip
    return {"weight": picked["best_weight"], "weight_1se": picked["one_se_weight"], "se": picked["se"],
            "weight_bagged": picked["weight"], "bagged_spread": picked["spread"], "table": picked["table"],
            "queries": picked["queries"]}  # fmt: skip


# ---------------------------------------------------------------------------------------------- rows phase


def run_rows(corpus: Corpus, budget: str, work: Path, card: Scorecard, row: str, seeds: Sequence[int],
             evaluator_for: Callable[[Corpus], Evaluator], variants: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    """One row (every seed) on one corpus and budget, after the corpus's BM25 and zero-shot cells."""
    recipe, variant = split_row(row)
    folder = run_dir(work, corpus.name, budget, data_variant(variant, variants))
    if not (folder / ".steps" / "label.json").exists():
        logger.warning("%s: no training data yet (run the data phase); rows skipped", folder.name)
        return
    evaluator = None
    for base_row in ("bm25", "zero-shot"):
        key = cell_key(corpus.name, None, base_row)
        if not card.has(key):
            evaluator = evaluator or evaluator_for(corpus)
            card.put(key, evaluator.run("bm25", None) if base_row == "bm25" else evaluator.zero_shot()[0])
            logger.info("%s: %s nDCG@10 %.4f", key, base_row, card.data["cells"][key]["metrics"]["nDCG@10"])
    data = data_variant(variant, variants)
    weight_key = cell_key(corpus.name, budget, "bm25-weight" + (f"@{data}" if data else ""))
    if recipe == "synthrank" and not set(FUSIONS.values()) <= set(card.data["cells"].get(weight_key, {})):
        # the default run's weights, or a data lever's picked on its own queries (cells from before the 1-SE rule
        # are redone: same queries, same untuned model, so the same best weight)
        evaluator = evaluator or evaluator_for(corpus)
        card.put(weight_key, pick_bm25_weight(folder, evaluator.dataset.corpus, _zero_shot(evaluator)))
    zero_fused = [cell_key(corpus.name, budget, f"zero-shot{suffix}") for suffix in FUSIONS]
    if recipe == "synthrank" and not data and not all(card.has(k) for k in zero_fused):
        evaluator = evaluator or evaluator_for(corpus)
        _, ranking = evaluator.zero_shot()
        for suffix, key in zip(FUSIONS, zero_fused, strict=True):
            card.put(key, evaluator.fused_with_bm25(ranking, card.data["cells"][weight_key][FUSIONS[suffix]]))
    # a lever's train settings (a data lever's are already in its folder's config: laying them again changes
    # nothing, unless the YAML gained one since, such as dev_holdout)
    train, dev, section = training_split(folder, lever_train_overlay(variant, variants))
    train_qids = {g.query_id for g in train}
    for seed in seeds:
        key = cell_key(corpus.name, budget, row, seed)
        saved = folder / "scorecard" / "rankings" / f"{row}-seed{seed}.json"
        trained_on = trained_holdout(card.data["cells"][key], folder) if card.has(key) else section["dev_holdout"]
        if trained_on != section["dev_holdout"]:
            logger.info("%s was trained on the %s dev split, the row now holds out by %s: trained again", key,
                        trained_on, section["dev_holdout"])  # fmt: skip
            for stale in [key, *(cell_key(corpus.name, budget, f"{row}{suffix}", seed) for suffix in FUSIONS)]:
                card.data["cells"].pop(stale, None)
        if card.has(key):
            if recipe == "synthrank" and saved.exists():  # a fusion rule added after the model was trained
                for suffix, weight_name in FUSIONS.items():
                    fused_key = cell_key(corpus.name, budget, f"{row}{suffix}", seed)
                    if not card.has(fused_key):
                        evaluator = evaluator or evaluator_for(corpus)
                        ranking = json.loads(saved.read_text(encoding="utf-8"))
                        card.put(fused_key, evaluator.fused_with_bm25(ranking, card.data["cells"][weight_key][weight_name]))
            continue
        evaluator = evaluator or evaluator_for(corpus)
        out = folder / "scorecard" / f"{row}-seed{seed}"
        t0 = time.perf_counter()
        model_dir, info = train_row(recipe, folder, train, dev, train_qids, section, seed, out, evaluator.dataset.corpus)
        train_seconds = time.perf_counter() - t0
        result, ranking = evaluator.run_with_ranking(row, evaluator.scorer(model_dir))
        result.update(info, train_seconds=round(train_seconds, 1), dev_holdout=section["dev_holdout"])
        if recipe == "synthrank":  # the same model fused with BM25 at the run's weights (levers: their own rows)
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(ranking), encoding="utf-8")  # kept (not committed) for fusion rules to come
            for suffix, weight_name in FUSIONS.items():
                fused = evaluator.fused_with_bm25(ranking, card.data["cells"][weight_key][weight_name])
                card.data["cells"][cell_key(corpus.name, budget, f"{row}{suffix}", seed)] = fused
        card.put(key, result)
        logger.info("%s nDCG@10 %.4f (trained %.0f s)", key, result["metrics"]["nDCG@10"], train_seconds)
        shutil.rmtree(out, ignore_errors=True)  # the numbers are kept; the weights are reproducible
        gc.collect()


def _zero_shot(evaluator: Evaluator) -> Any:
    from synthrank.rerank import BiEncoderScorer

    return BiEncoderScorer("minilm", batch_size=64, dtype=evaluator.dtype)


def train_row(row: str, folder: Path, train: list[Any], dev: list[Any], train_qids: set[str],
              section: dict[str, Any], seed: int, out: Path,
              corpus: dict[str, Any]) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """``corpus``: the run's corpus, already loaded by the evaluator (the same folder the run read)."""
    from synthrank.train import DevSet

    dev_set = DevSet.from_groups(dev) if dev else None
    if row == "synthrank":
        return train_ours(train, out, section, seed, dev_set), {"groups": len(train)}
    if row == "inpars":
        groups = inpars_groups(folder, train_qids)
        changes = {"architecture": "cross-encoder", "loss": "bce", "group_size": 2, "merge_with_base": 0.0,
                   "learning_rate": 7e-5, "drop_false_negatives": False}  # fmt: skip
        return train_ours(groups, out, section, seed, None, **changes), {"groups": len(groups)}
    if row == "gpl":
        groups = gpl_groups(folder, train_qids)
        changes = {"architecture": "bi-encoder", "loss": "margin_mse", "group_size": 2, "merge_with_base": 0.0,
                   "learning_rate": 2e-5}  # fmt: skip
        return train_ours(groups, out, section, seed, None, **changes), {"groups": len(groups)}
    if row == "st":
        texts = [d.full_text("\n") for d in corpus.values()]
        return train_st(train, texts, out, section, seed), {"groups": len(train)}
    raise ValueError(f"unknown row {row!r}; known: {', '.join(ROWS)}")


# ---------------------------------------------------------------------------------------------- report phase


def seed_mean(card: Scorecard, corpus: str, budget: str, row: str, seeds: Sequence[int]) -> dict[str, Any] | None:
    """Mean ± std over the seeds measured so far of nDCG@10, each query's seed-averaged value, and how many seeds
    are in (a row shows as soon as one seed is: the table says how many)."""
    cells = [c for c in (card.data["cells"].get(cell_key(corpus, budget, row, s)) for s in seeds) if c is not None]
    if not cells:
        return None
    means = [c["metrics"]["nDCG@10"] for c in cells]  # type: ignore[index]
    qids = set.intersection(*(set(c["per_query"]) for c in cells))  # type: ignore[index]
    per_query = {q: statistics.fmean(c["per_query"][q] for c in cells) for q in qids}  # type: ignore[index]
    return {"mean": statistics.fmean(means), "std": statistics.stdev(means) if len(means) > 1 else 0.0,
            "per_seed": means, "per_query": per_query, "seeds": len(cells)}  # fmt: skip


def paired(a: dict[str, float], b: dict[str, float]) -> dict[str, float] | None:
    from synthrank.evaluate import paired_t_test_per_query

    if len(set(a) & set(b)) < 2:
        return None
    test = paired_t_test_per_query(a, b, "nDCG@10")
    return {"delta": test.delta, "p_value": test.p_value, "queries": test.num_queries}


def summarize(card: Scorecard, corpora: Sequence[str], budgets: Sequence[str], rows: Sequence[str],
              seeds: Sequence[int]) -> dict[str, Any]:  # fmt: skip
    """Per corpus and budget: every row's seed mean ± std, gain over zero-shot with its paired test, and the
    default recipe against the best peer; then the mean gain across corpora (MedQuAD in its exclusion form)."""
    out: dict[str, Any] = {}
    for budget in budgets:
        table: dict[str, Any] = {}
        for corpus in corpora:
            zero = card.data["cells"].get(cell_key(corpus, None, "zero-shot"))
            bm25 = card.data["cells"].get(cell_key(corpus, None, "bm25"))
            if zero is None:
                continue
            entry: dict[str, Any] = {"bm25": bm25["metrics"]["nDCG@10"] if bm25 else None,
                                     "zero-shot": zero["metrics"]["nDCG@10"], "rows": {}}  # fmt: skip
            fused_zeros = {}
            for suffix in FUSIONS:
                fz = card.data["cells"].get(cell_key(corpus, budget, f"zero-shot{suffix}"))
                if fz:
                    fused_zeros[suffix] = fz
                    entry[f"zero-shot{suffix}"] = {"mean": fz["metrics"]["nDCG@10"], "weight": fz.get("bm25_weight"),
                                                   "vs_zero_shot": paired(fz["per_query"], zero["per_query"])}  # fmt: skip
            with_fusion = [x for r in rows
                           for x in ([r, *(f"{r}{f}" for f in FUSIONS)] if split_row(r)[0] == "synthrank" else [r])]
            for row in with_fusion:
                m = seed_mean(card, corpus, budget, row, seeds)
                if m is None:
                    continue
                gains = [v - zero["metrics"]["nDCG@10"] for v in m["per_seed"]]
                entry["rows"][row] = {"mean": m["mean"], "std": m["std"], "seeds": m["seeds"], "gain": statistics.fmean(gains),
                                      "gain_std": statistics.stdev(gains) if len(gains) > 1 else 0.0,
                                      "vs_zero_shot": paired(m["per_query"], zero["per_query"])}  # fmt: skip
                entry["rows"][row]["_per_query"] = m["per_query"]
                variant = split_row(unfused(row))[1]
                data = data_variant(variant, card.data["meta"].get("variants") or {}) if variant else None
                data_run = card.data["runs"].get(f"{corpus}/{budget}@{data}") if data else None
                if data_run:
                    entry["rows"][row]["llm"] = data_run["usage"].get("calls")
                    entry["rows"][row]["data"] = {"passages": data_run.get("passages"),
                                                  "groups": data_run.get("groups.jsonl"),
                                                  "llm_minutes": data_run["usage"].get("llm_minutes")}  # fmt: skip
                if fusion_of(row):
                    weights = {card.data["cells"].get(cell_key(corpus, budget, row, s), {}).get("bm25_weight")
                               for s in seeds} - {None}  # fmt: skip
                    entry["rows"][row]["weight"] = weights.pop() if len(weights) == 1 else None
                if (variant or fusion_of(row)) and "synthrank" in entry["rows"]:
                    entry["rows"][row]["vs_synthrank"] = paired(m["per_query"], entry["rows"]["synthrank"]["_per_query"])
                fusion = fusion_of(row)
                if fusion and fusion in fused_zeros:
                    entry["rows"][row]["vs_zero_shot_fused"] = paired(m["per_query"], fused_zeros[fusion]["per_query"])
            for row, r in entry["rows"].items():  # a lever against the default recipe it varies, fusion for fusion
                base = LEVER_BASE_ROW + (fusion_of(row) or "")
                if split_row(unfused(row))[1] not in (None, split_row(LEVER_BASE_ROW)[1]) and base in entry["rows"]:
                    r["vs_default_recipe"] = paired(r["_per_query"], entry["rows"][base]["_per_query"])
            peers = [r for r in PEERS if r in entry["rows"]]
            if peers:
                best = max(peers, key=lambda r: entry["rows"][r]["mean"])
                entry["best_peer"] = best
                for ours in ("synthrank", DEFAULT_ROW):
                    if ours in entry["rows"]:
                        entry["rows"][ours]["vs_best_peer"] = paired(entry["rows"][ours]["_per_query"],
                                                                     entry["rows"][best]["_per_query"])  # fmt: skip
            for r in entry["rows"].values():
                r.pop("_per_query")
            run = card.data["runs"].get(f"{corpus}/{budget}")
            if run:
                entry["llm"] = {k: run["usage"].get(k) for k in ("calls", "llm_minutes")}
                entry["training_groups"] = run.get("groups.jsonl")
            table[corpus] = entry
        counted = [c for c in table if c != "medquad"]  # MedQuAD counts in its exclusion form
        gains = [table[c]["rows"]["synthrank"]["gain"] for c in counted if "synthrank" in table[c]["rows"]]
        out[budget] = {"corpora": table,
                       "mean_gain_synthrank": statistics.fmean(gains) if gains else None,
                       "mean_gain_over": [c for c in counted if "synthrank" in table[c]["rows"]],
                       "default": default_criteria(table, counted)}  # fmt: skip
    return out


def default_criteria(table: dict[str, Any], counted: Sequence[str]) -> dict[str, Any] | None:
    """The issue's terms for :data:`DEFAULT_ROW` at one budget: its mean gain over the zero-shot encoder, the
    corpora where that gain is significant (p < 0.05), where it is significantly below, and where the best peer's
    mean is above it."""
    present = [c for c in counted if DEFAULT_ROW in table[c]["rows"]]
    if not present:
        return None
    rows = {c: table[c]["rows"][DEFAULT_ROW] for c in present}

    def significant(test: dict[str, float] | None, sign: int) -> bool:
        return bool(test) and test["p_value"] < 0.05 and sign * test["delta"] > 0  # type: ignore[index]

    return {
        "corpora": present,
        "mean_gain": statistics.fmean(r["gain"] for r in rows.values()),
        "significant_gain": [c for c, r in rows.items() if significant(r["vs_zero_shot"], +1)],
        "significantly_below_zero_shot": [c for c, r in rows.items() if significant(r["vs_zero_shot"], -1)],
        "below_best_peer": [c for c, r in rows.items() if table[c].get("best_peer")
                            and table[c]["rows"][table[c]["best_peer"]]["mean"] > r["mean"]],
        "peers_compared": [c for c in present if table[c].get("best_peer")],
    }  # fmt: skip


ROW_RECIPES = {
    "synthrank": "the run's own train step: LLM queries (LIMRANK's five types, one per passage), the judge's "
                 "labels (source rejected: query dropped; judged-relevant candidates positives), BM25 negatives, "
                 "LCE over groups of 8, MiniLM tuned as a bi-encoder for 3 epochs at 2e-5 (the best epoch on the "
                 "held-out synthetic groups when they hold at least 20 queries, else the last: at this budget "
                 "always the last), merged half back with its base",
    "inpars": "the same queries, the top half by the LLM's score of its source passage (the judge's "
              "P(relevant); InPars v1 ranks by the generator's log-probability, which a chat endpoint does not "
              "return), source passage positive, BM25 top-30 negatives drawn anew each epoch, pointwise BCE with one "
              "negative per positive (monoT5's true/false), a MiniLM cross-encoder with a fresh head, 7e-5",
    "gpl": "MiniLM tuned as a bi-encoder with MarginMSE on (query, source passage, judged candidate) "
           "triples, the teacher margin being the LLM judge's log-odds margin (GPL's teacher is a cross-encoder), "
           "2e-5, no merge with the base",
    "st": "util.mine_hard_negatives with MiniLM as the embedder over the whole corpus "
          "(5 negatives, labeled-pair) for the same training queries and positives, then CrossEncoderTrainer with "
          "its default loss (BinaryCrossEntropyLoss) on CrossEncoder(MiniLM, num_labels=1), batch 16, 2e-5, 3 epochs",
    "+bm25": "a row's model fused with BM25: per query weight x z(BM25 score) + (1 - weight) x z(model score) over "
             "the same top-30, the weight (w) picked on the run's judge-kept synthetic queries with the untuned encoder "
             "(never on an evaluation query; a data lever's on its own run's queries); 'zero-shot MiniLM + BM25 "
             "fusion' is the zero-shot model at the default run's weight",
    "+bm25se": "the same fusion at the least BM25 weight whose synthetic-query nDCG@10 is within one standard error "
               "of the best weight's (the one-standard-error rule: with a few lexical synthetic queries the best "
               "weight is a noisy, BM25-leaning pick)",
    "+bm25bag": "the same fusion at the 1-SE rule's choice averaged over 200 bootstrap resamples of the run's source "
                "passages (each with all its queries), so the weight no longer jumps between grid points as a few "
                "passages come and go",
}


def row_label(row: str) -> str:
    if row.endswith("+bm25bag"):
        return row_label(row.removesuffix("+bm25bag")) + " + BM25 fusion (bagged 1-SE weight)"
    if row.endswith("+bm25se"):
        return row_label(row.removesuffix("+bm25se")) + " + BM25 fusion (1-SE weight)"
    if row.endswith("+bm25"):
        return row_label(row.removesuffix("+bm25")) + " + BM25 fusion"
    recipe, variant = split_row(row)
    if row == LEVER_BASE_ROW:
        return "synthrank recipe `quick` (3 epochs: the default until lever `quick-2ep`)"
    if row == unfused(DEFAULT_ROW):
        return "synthrank default recipe (`quick`, 2 epochs: lever `quick-2ep`)"
    if recipe == "synthrank" and variant:  # the lever's line above the table says what it lays over which recipe
        return f"synthrank + lever `{variant}`"
    return ROW_LABELS[recipe] + (f" + lever `{variant}`" if variant else "")


def display_label(row: str) -> str:
    """A table row's label: the served default spelled out, the default's model on its own said so."""
    if row == DEFAULT_ROW:
        return ("**synthrank default, as served** (recipe `quick`, 2 epochs, + BM25 at the run's 1-SE weight: what "
                "`synthrank run` trains and the adapters serve)")  # fmt: skip
    if row == unfused(DEFAULT_ROW):
        return row_label(row) + ", model alone"
    return row_label(row)


def short_label(row: str) -> str:
    return "synthrank default, as served" if row == DEFAULT_ROW else row_label(row)


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = ["# synthrank scorecard", "",
             f"nDCG@10 of BM25 top-{meta['top_k']} reranked; mean ± std over seeds {meta['seeds']}; gain = over the "
             "zero-shot MiniLM, p = paired t-test of the seed-averaged per-query nDCG@10. LLM-minutes: calls counted "
             "from the run's artifacts times the seconds per call its steps measured on this machine (other jobs "
             "shared its 2 cores, so they are upper bounds). "
             f"Machine: {meta['machine']}. Command: `{meta.get('command', '?')}`.", ""]  # fmt: skip
    lines += ["How each row was trained (same synthetic queries, backbone, budget and seeds; "
              "benchmarks/scorecard.py):", ""]
    fused_labels = {"+bm25": "... + BM25 fusion rows", "+bm25se": "... + BM25 fusion (1-SE weight) rows",
                    "+bm25bag": "... + BM25 fusion (bagged 1-SE weight) rows"}
    lines += [f"- **{ROW_LABELS.get(k) or fused_labels[k]}**: {v}" for k, v in ROW_RECIPES.items()]
    for name, overlay in (meta.get("variants") or {}).items():
        shared = (overlay.get("scorecard") or {}).get("data")
        where = (f"trains on lever `{shared}`'s data with its train settings, these laid over them" if shared
                 else "laid over the judged recipe's run config")  # fmt: skip
        lines.append(f"- **lever `{name}`**: {json.dumps(overlay)} {where}")
    lines.append("")
    for budget, block in summary.items():
        # a lever with its own passage count (the default recipe: 20 / 80) says so in its data line below
        lines += [f"## Budget `{budget}` ({BUDGETS.get(budget, '?')} passages for the judged recipe and the peers)", ""]
        corpora = list(block["corpora"])
        lines.append("| row | " + " | ".join(corpora) + " |")
        lines.append("|---|" + "---:|" * len(corpora))
        present = list(dict.fromkeys(r for c in block["corpora"].values() for r in c["rows"]))
        present.sort(key=lambda r: r != DEFAULT_ROW)  # the served default first, then rows as measured
        for row in ("bm25", "zero-shot", *(f"zero-shot{f}" for f in FUSIONS), *present):
            cells = []
            for c in corpora:
                e = block["corpora"][c]
                if row in ("bm25", "zero-shot"):
                    cells.append(f"{e[row]:.4f}" if e.get(row) is not None else "–")
                elif row.startswith("zero-shot+"):
                    z = e.get(row)
                    test = z["vs_zero_shot"] if z else None
                    cells.append(f"{z['mean']:.4f} (w {z['weight']}, {z['mean'] - e['zero-shot']:+.4f}"
                                 + (f", p {test['p_value']:.2g})" if test else ")") if z else "–")  # fmt: skip
                elif row in e["rows"]:
                    r = e["rows"][row]
                    test = r["vs_zero_shot"]
                    p = f", p {test['p_value']:.2g}" if test else ""
                    partial = f", {r['seeds']} of {len(meta['seeds'])} seeds" if r["seeds"] < len(meta["seeds"]) else ""
                    w = f"w {r['weight']}, " if r.get("weight") is not None else ""
                    cells.append(f"{r['mean']:.4f} ± {r['std']:.4f} ({w}{r['gain']:+.4f}{p}{partial})")
                else:
                    cells.append("not run")
            lines.append(f"| {display_label(row)} | " + " | ".join(cells) + " |")
        extra = []
        for c in corpora:
            e = block["corpora"][c]
            for ours in (DEFAULT_ROW, "synthrank"):
                t = e["rows"].get(ours, {}).get("vs_best_peer")
                if t:
                    extra.append(f"{c}: {short_label(ours)} vs {ROW_LABELS[e['best_peer']]} {t['delta']:+.4f} "
                                 f"(p {t['p_value']:.2g})")  # fmt: skip
            for row, r in e["rows"].items():
                if r.get("data") and not fusion_of(row):
                    d = r["data"]
                    minutes = f"{d['llm_minutes']:.1f} LLM-min" if d.get("llm_minutes") else "LLM time unknown"
                    extra.append(f"{c}: {short_label(row)}'s data: {r['llm']} LLM calls, {minutes}, "
                                 f"{d['passages']} passages, {d['groups']} groups")  # fmt: skip
                if r.get("vs_synthrank"):
                    t = r["vs_synthrank"]
                    extra.append(f"{c}: {short_label(row)} vs the judged recipe {t['delta']:+.4f} (p {t['p_value']:.2g})")
                if r.get("vs_default_recipe"):
                    t = r["vs_default_recipe"]
                    extra.append(f"{c}: {short_label(row)} vs recipe `quick` (3 epochs) alike "
                                 f"{t['delta']:+.4f} (p {t['p_value']:.2g})")  # fmt: skip
            if e.get("llm"):
                llm = e["llm"]
                minutes = f"{llm['llm_minutes']:.1f} LLM-min" if llm.get("llm_minutes") else "LLM time unknown"
                extra.append(f"{c}: {llm['calls']} LLM calls, {minutes}, {e.get('training_groups')} groups")
        mean = block["mean_gain_synthrank"]
        lines += ["", *[f"- {x}" for x in extra],
                  f"- mean gain of the judged recipe over {', '.join(block['mean_gain_over']) or 'no corpus yet'}: "
                  + (f"{mean:+.4f}" if mean is not None else "–")]  # fmt: skip
        d = block.get("default")
        if d:
            peers = (f"below the best peer on {', '.join(d['below_best_peer']) or 'none'} of "
                     f"{', '.join(d['peers_compared'])}" if d["peers_compared"] else "no peer at this budget")
            lines.append(f"- **the default as served** over {', '.join(d['corpora'])}: mean gain {d['mean_gain']:+.4f}; "
                         f"significant (p < 0.05) on {len(d['significant_gain'])} ({', '.join(d['significant_gain']) or '-'}); "
                         f"significantly below the zero-shot model on {', '.join(d['significantly_below_zero_shot']) or 'none'}; "
                         f"{peers}")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = [b for b in summary if summary[b]["corpora"]]
    if not budgets:
        return
    fig, axes = plt.subplots(1, len(budgets), figsize=(6 * len(budgets), 4), squeeze=False)
    for ax, budget in zip(axes[0], budgets, strict=True):
        corpora = list(summary[budget]["corpora"])
        rows = list(dict.fromkeys(r for c in corpora for r in summary[budget]["corpora"][c]["rows"]))
        rows.sort(key=lambda r: r != DEFAULT_ROW)  # the served default first
        width = 0.8 / max(1, len(rows))
        for i, row in enumerate(rows):
            xs, ys, es = [], [], []
            for j, c in enumerate(corpora):
                r = summary[budget]["corpora"][c]["rows"].get(row)
                if r:
                    xs.append(j + (i - (len(rows) - 1) / 2) * width)
                    ys.append(r["gain"])
                    es.append(r["gain_std"])
            if xs:
                label = "synthrank default, as served" if row == DEFAULT_ROW else row_label(row)
                ax.bar(xs, ys, width, yerr=es, capsize=3, label=label)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(corpora)), corpora, rotation=20, fontsize=8)
        ax.set_title(f"budget {budget}: nDCG@10 gain over zero-shot MiniLM")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- main


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")  # fmt: skip
    return f"{platform.machine()}, {os.cpu_count()} cores ({cpu})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=["data", "rows", "report", "all"], default="all")
    parser.add_argument("--corpora", default=",".join(CORPORA), help=f"comma-separated, of: {', '.join(CORPORA)}")
    parser.add_argument("--budgets", default="default,large", help="comma-separated, of: default (32), large (128)")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--top-k", type=int, default=30)
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "scorecard")
    parser.add_argument("--output", type=Path, default=RESULTS / "scorecard.json")
    parser.add_argument("--run-config", type=Path, default=None,
                        help="YAML overrides for every run (e.g. llm.model, generate settings) on top of the defaults")
    parser.add_argument("--passages", default=None,
                        help="override the budgets' passage counts, e.g. default=4 (the integration smoke test)")
    parser.add_argument("--eval-queries", type=int, default=None, help="cap every corpus's evaluated queries")
    parser.add_argument("--variants", default="",
                        help="levers as NAME=config.yaml,...: each its own data at the same budget, row synthrank@NAME")
    parser.add_argument("--dtype", default=None, help="scoring dtype (default: bf16 where fast, else fp32)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(REPO))
    import yaml

    corpora = [c for c in args.corpora.split(",") if c]
    budgets = [b for b in args.budgets.split(",") if b]
    rows = [r for r in args.rows.split(",") if r]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    variants: dict[str, dict[str, Any]] = {}
    for item in (v for v in args.variants.split(",") if v):
        vname, _, vpath = item.partition("=")
        if not vname or not vpath or not Path(vpath).is_file():
            parser.error(f"--variants wants NAME=existing.yaml, got {item!r}")
        variants[vname] = yaml.safe_load(Path(vpath).read_text()) or {}
    for vname, overlay in variants.items():
        shared = (overlay.get("scorecard") or {}).get("data")
        if shared and (shared not in variants or data_variant(shared, variants) != shared):
            parser.error(f"--variants: {vname} trains on {shared}'s data: give {shared}=its.yaml (a data lever) too")
        if shared and set(overlay) - {"train", "scorecard"}:
            parser.error(f"--variants: {vname} trains on {shared}'s data, so it may only set train (and scorecard)")
    levers = [f"synthrank@{v}" for v in variants if f"synthrank@{v}" not in rows]
    at = rows.index("synthrank") + 1 if "synthrank" in rows else len(rows)
    rows[at:at] = levers  # each lever right after the default recipe it varies, before the peers
    for asked, known in ((corpora, CORPORA), (budgets, BUDGETS), ([split_row(r)[0] for r in rows], ROWS)):
        unknown = [n for n in asked if n not in known]
        if unknown:
            parser.error(f"unknown {unknown}; known: {', '.join(known)}")
    if args.passages:
        for item in args.passages.split(","):
            key, _, value = item.partition("=")
            BUDGETS[key] = int(value)
    if args.eval_queries:
        for name in list(CORPORA):
            CORPORA[name] = replace(CORPORA[name], eval_queries=args.eval_queries)
    base = deep_merge(JUDGED_RECIPE, yaml.safe_load(args.run_config.read_text()) or {} if args.run_config else {})
    command = "benchmarks/scorecard.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"top_k": args.top_k, "seeds": seeds, "budgets": dict(BUDGETS), "rows": rows, "variants": variants,
            "machine": machine()}  # fmt: skip
    if args.phase != "report":  # the command that measured, not the one that only redrew the tables
        meta["command"] = command.strip()
    card = Scorecard(args.output, meta)
    missing = [c for c in corpora if not CORPORA[c].path().exists()]
    if missing:
        logger.warning("skipping corpora absent from %s: %s", SHARED, ", ".join(missing))
        corpora = [c for c in corpora if c not in missing]
    synthrank_cmd = [sys.executable, "-m", "synthrank_cli"]
    failed = False
    if args.phase in ("data", "all"):
        needs_base = needs_base_data(rows, variants)
        if not needs_base:
            logger.info("no row trains on the judged recipe's data: its LLM runs are skipped")
        for budget in budgets:  # every corpus's default budget before any large one
            for name in corpora if needs_base else ():
                failed |= not run_data(CORPORA[name], budget, args.work_dir, base, card, synthrank_cmd)
            for vname, overlay in variants.items():
                if data_variant(vname, variants) != vname:
                    continue  # a training lever: no data of its own
                for name in corpora:
                    passages = variant_passages(overlay, CORPORA[name], budget, card)
                    if passages is None:
                        logger.error("%s/%s@%s: the default run's LLM calls are unknown; run its data first",
                                     name, budget, vname)  # fmt: skip
                        failed = True
                        continue
                    failed |= not run_data(CORPORA[name], budget, args.work_dir, deep_merge(base, overlay), card,
                                           synthrank_cmd, vname, passages)  # fmt: skip
    if args.phase in ("rows", "all"):
        dtype = args.dtype or evaluation_dtype()
        cache: dict[str, Evaluator] = {}

        def evaluator_for(corpus: Corpus) -> Evaluator:
            if corpus.name not in cache:
                cache.clear()  # one corpus's index in memory at a time
                cache[corpus.name] = Evaluator(corpus, args.top_k, dtype)
            return cache[corpus.name]

        for budget in budgets:
            for row in rows:  # one row on every corpus before the next row: the default recipe's scores come first
                for name in corpora:
                    run_rows(CORPORA[name], budget, args.work_dir, card, row, seeds, evaluator_for, variants)
    for key, run in card.data["runs"].items():  # recounted from the artifacts (resumed runs count every call once)
        corpus_budget, _, variant = key.partition("@")
        corpus_name, _, budget = corpus_budget.partition("/")
        folder = run_dir(args.work_dir, corpus_name, budget, variant or None)
        if (folder / "run_config.json").exists():
            run["usage"] = llm_usage(folder)
    summary = summarize(card, corpora, budgets, rows, seeds)
    card.data["summary"] = summary
    card.save()
    args.output.with_suffix(".md").write_text(markdown(summary, card.data["meta"]), encoding="utf-8")
    plot(summary, args.output.with_suffix(".png"))
    logger.info("wrote %s, .md and .png", args.output)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
