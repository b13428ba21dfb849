"""The five steps of the method as :class:`~synthrank.runner.Step` objects over one output folder.

generate -> mine -> label -> train -> evaluate. Each step reads the artifacts of the ones before
it from the output folder, writes its own there, and resumes its own half-done work (append-only
JSONL, the LLM response cache, training checkpoints), so a killed run repeats no LLM call.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthrank.data import Dataset, TrainingGroup, load_dataset, read_groups, write_groups, write_json
from synthrank.data.splits import split_dev, subsample_queries
from synthrank.errors import DataError, SynthrankError
from synthrank.retrieve import Analyzer, InMemoryBM25, Retriever
from synthrank.runner.steps import Step, StepContext
from synthrank.runtime.precision import evaluation_dtype
from synthrank.train.config import ARCHITECTURE_DEFAULTS

if TYPE_CHECKING:
    from synthrank.train import TrainConfig

logger = logging.getLogger(__name__)

STEP_NAMES = ("generate", "mine", "label", "train", "evaluate")
_RESULT_LLM_KEYS = ("model", "base_url")  # the LLM settings that change answers (not cache paths, timeouts)


class RunContext:
    """What every step shares: the config and the corpus, loaded once and only when a step needs it."""

    def __init__(self, config: Mapping[str, Any], output_dir: Path, *, show_progress: bool = True) -> None:
        if not config.get("corpus"):
            raise DataError("no corpus given: pass --corpus or set `corpus:` in the run config", field="corpus")
        self.config = config
        self.output_dir = output_dir
        self.show_progress = show_progress
        self._dataset: Dataset | None = None
        self._retriever: Retriever | None = None

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = load_corpus(self.config["corpus"])
        return self._dataset

    def retriever(self) -> Retriever:
        """The BM25 index over the corpus, built once per run (in memory or on Elasticsearch)."""
        if self._retriever is None:
            self._retriever = make_retriever(self.config["mine"], self.dataset.name)
            self._retriever.index(list(self.dataset.corpus.values()))
        return self._retriever


def load_corpus(source: str | Path) -> Dataset:
    """The corpus only: queries and qrels that come with it are never used for training."""
    dataset = load_dataset(source)
    return Dataset(name=dataset.name, corpus=dataset.corpus, queries={}, qrels={})


def make_retriever(mine: Mapping[str, Any], corpus_name: str) -> Retriever:
    """The BM25 backend named by the ``mine`` section; both use the same analyser and parameters."""
    if mine["backend"] == "memory":
        return InMemoryBM25()
    if mine["backend"] != "elasticsearch":
        raise DataError(f"unknown BM25 backend {mine['backend']!r}; use memory or elasticsearch", field="mine.backend")
    from synthrank.retrieve.elasticsearch_backend import ElasticsearchBM25

    es = mine["elasticsearch"]
    return ElasticsearchBM25(
        hosts=es["url"],
        index_name=es["index"] or f"synthrank-{corpus_name}".lower(),
        analyzer=Analyzer(),
        api_key=os.environ.get(es["api_key_env"]) if es["api_key_env"] else None,
        username=es["username"],
        password=os.environ.get(es["password_env"]) if es["password_env"] else None,
        ca_certs=es["ca_certs"],
        verify_certs=None if es["verify_certs"] else False,
        reuse_index=bool(es["reuse_index"]),
    )


def llm_config(config: Mapping[str, Any]) -> Any:
    """The LLM client settings of the run (the same as `synthrank generate/label` flags)."""
    from synthrank.llm.config import llm_config_from_options

    return llm_config_from_options(config["llm"])


def _llm_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: config["llm"].get(k) for k in _RESULT_LLM_KEYS}


# ---------------------------------------------------------------------------------------------- generate


def run_generate(run: RunContext, ctx: StepContext) -> dict[str, Any]:
    from synthrank.llm import LLMClient
    from synthrank.synthesize import GenerationConfig, PersonaSet, QueryGenerator, build_filters

    g = run.config["generate"]
    demonstrations = run_demonstrations(run)
    passages = generation_passages(run, demonstrations)
    gen_config = GenerationConfig.from_options(g)
    filters = build_filters(
        dedup=g["dedup"],
        min_words=g["min_words"] or None,
        max_words=g["max_words"] or None,
        max_copy_ratio=g["max_copy_ratio"] or None,
        roundtrip_retriever=run.retriever() if g["roundtrip_k"] else None,
        roundtrip_k=g["roundtrip_k"] or 20,
    )
    with LLMClient(llm_config(run.config)) as client:
        generator = QueryGenerator(client, gen_config, personas=PersonaSet.default(), filters=filters,
                                   demonstrations=demonstrations)  # fmt: skip
        report = generator.generate(passages, ctx.path("queries.jsonl"), show_progress=run.show_progress)
    stats = report.to_dict()
    write_json(ctx.path("generate_stats.json"), stats)
    if report.kept == 0:
        raise SynthrankError(
            f"no synthetic query survived for {report.passages} passages ({report.slots_failed} failed calls); "
            f"see {ctx.path('rejected.jsonl')} and rerun"
        )
    if report.slots_failed:
        raise SynthrankError(
            f"{report.slots_failed} LLM calls failed; rerun `synthrank run` to retry them "
            "(the queries already written are kept)"
        )
    return {"passages": report.passages, "queries": report.kept, "generated": report.generated,
            "survival": stats.get("survival", {}), "usage": report.usage}  # fmt: skip


def run_demonstrations(run: RunContext) -> list[Any]:
    """The user's example queries of ``generate.demonstrations`` (none without the setting); the setting without
    the ``demonstrated`` query type, which alone uses them, is an error rather than a silent no-op."""
    from synthrank.synthesize import read_demonstrations

    g = run.config["generate"]
    if not g.get("demonstrations"):
        return []
    if "demonstrated" not in g["query_types"]:
        raise DataError("example queries are shown only to the 'demonstrated' query type: add it to "
                        "generate.query_types (`synthrank run --demonstrations` does)",
                        field="generate.query_types")  # fmt: skip
    return read_demonstrations(g["demonstrations"], run.dataset.corpus)


def generation_passages(run: RunContext, demonstrations: list[Any] | None = None) -> list[Any]:
    """The passages the LLM writes queries for: the ``generate`` section's seeded sample of the corpus without its
    excluded passages; then any demonstrated passage is dropped from it (after the draw, so a run with
    demonstrations writes for the same passages as one without, less those). ``demonstrations``: the run's, when
    the caller has read them already."""
    from synthrank.synthesize import read_excluded_ids, sample_passages

    g = run.config["generate"]
    excluded = read_excluded_ids(g["exclude_ids"], run.dataset.corpus)
    demos = run_demonstrations(run) if demonstrations is None else demonstrations
    demonstrated = {d.doc_id for d in demos if d.doc_id is not None}
    sample = sample_passages(
        [doc for doc_id, doc in run.dataset.corpus.items() if doc_id not in excluded],
        g["max_passages"] or None,
        strategy=g["sampling"],
        seed=g["seed"],
        field=g["stratify_field"],
        min_chars=g["min_chars"],
        max_chars=g["max_chars"],
    )
    return [doc for doc in sample if doc.id not in demonstrated]


# ---------------------------------------------------------------------------------------------- mine


def mining_config(mine: Mapping[str, Any]) -> Any:
    """The run config's ``mine`` section as a :class:`~synthrank.mine.MiningConfig` (backend and model keys aside)."""
    from synthrank.mine import MiningConfig

    return MiningConfig.from_dict(
        {k: v for k, v in mine.items() if k not in ("backend", "elasticsearch", "denoise_model")}
    )


def run_mine(run: RunContext, ctx: StepContext) -> dict[str, Any]:
    from synthrank.mine import HardNegativeMiner, read_mining_queries

    m = run.config["mine"]
    config = mining_config(m)
    queries = read_mining_queries(ctx.path("queries.jsonl"), corpus=run.dataset.corpus)
    denoiser = None
    if m["denoise_model"]:
        from synthrank.rerank import load_scorer

        denoiser = load_scorer(m["denoise_model"])
    miner = HardNegativeMiner(run.retriever(), run.dataset.corpus, config, denoiser=denoiser)
    summary = miner.mine_to_files(
        queries, ctx.path("candidates.jsonl"), ctx.path("mined_groups.jsonl"), show_progress=run.show_progress
    )
    write_json(ctx.path("mine_stats.json"), summary)
    return {k: summary[k] for k in ("queries", "groups_total", "mean_negatives", "queries_per_second")}


# ---------------------------------------------------------------------------------------------- label


def run_label(run: RunContext, ctx: StepContext) -> dict[str, Any]:
    lab = run.config["label"]
    if not lab["enabled"]:  # ablation: no LLM labels, the source passage is the positive
        groups = read_groups(ctx.path("mined_groups.jsonl"))
        write_groups(ctx.path("groups.jsonl"), groups)
        ctx.path("labels.jsonl").write_text("", encoding="utf-8")  # nothing judged: the marker of this step
        return {"groups": len(groups), "llm": False}
    from synthrank.label import LabelConfig, label_to_groups, read_candidates
    from synthrank.llm import LLMClient

    queries = read_candidates(
        ctx.path("candidates.jsonl"), corpus=run.dataset.corpus, queries=ctx.path("queries.jsonl")
    )
    config = LabelConfig.from_dict({k: v for k, v in lab.items() if k != "enabled"})
    with LLMClient(llm_config(run.config)) as client:
        report, stats = label_to_groups(
            client, run.dataset.corpus, queries, config, ctx.output_dir,
            mined_groups=ctx.path("mined_groups.jsonl"), pool_size=int(run.config["mine"]["num_negatives"]),
            show_progress=run.show_progress,
        )  # fmt: skip
    write_json(ctx.path("label_stats.json"), stats)
    if report.pairs_failed:
        raise SynthrankError(
            f"{report.pairs_failed} judgements failed; rerun `synthrank run` to retry them (the labels already "
            "written are kept)"
        )
    if report.groups == 0:
        raise SynthrankError(
            f"the judge kept no training group out of {report.queries} queries; see {ctx.path('labels.jsonl')}"
        )
    return {"queries": report.queries, "groups": report.groups, "pairs_judged": report.pairs_judged,
            "dropped_source_not_relevant": report.dropped_source_not_relevant,
            "false_negatives_rescued": report.false_negatives_rescued, "usage": report.usage}  # fmt: skip


# ---------------------------------------------------------------------------------------------- train


def train_config_from_section(section: Mapping[str, Any]) -> TrainConfig:
    """The trainer's settings from a run config's ``train`` section (its ``options`` are TrainConfig fields too).

    ``learning_rate`` and ``merge_with_base`` left out or at None follow the architecture
    (:data:`~synthrank.train.config.ARCHITECTURE_DEFAULTS`).
    """
    from synthrank.train import TrainConfig

    fields = {k: v for k, v in section.items() if k not in ("dev_fraction", "dev_holdout", "options")}
    fields.update(section.get("options") or {})
    for key in ARCHITECTURE_DEFAULTS:
        fields.setdefault(key, None)
    return TrainConfig.from_dict(fields)


def _train_fingerprint(section: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer's own fingerprint of the resolved settings (plus the dev split), not the YAML as written: an
    unset value and its explicit equal match, and settings added later do not restart runs at their defaults."""
    return {**train_config_from_section(section).fingerprint(), "dev_fraction": section["dev_fraction"],
            "dev_holdout": section["dev_holdout"]}


def run_train(run: RunContext, ctx: StepContext) -> dict[str, Any]:
    from synthrank.train import DevSet, train_reranker

    t = run.config["train"]
    groups = read_groups(ctx.path("groups.jsonl"))
    if not groups:
        raise SynthrankError(f"{ctx.path('groups.jsonl')} holds no training group")
    train_groups, dev_groups = split_dev(groups, float(t["dev_fraction"]), int(t["seed"]), holdout=t["dev_holdout"])
    write_groups(ctx.path("dev_groups.jsonl"), dev_groups)
    config = train_config_from_section(t)
    dev = DevSet.from_groups(dev_groups) if dev_groups else None
    result = train_reranker(train_groups, ctx.path("train"), config, dev=dev, show_progress=run.show_progress)
    summary = {"train_groups": len(train_groups), "dev_groups": len(dev_groups), "model_dir": str(result.model_dir),
               "best_step": result.best_step, "metrics": _small(result.metrics)}  # fmt: skip
    write_json(ctx.path("train_summary.json"), summary)
    return summary


def trained_model_dir(output_dir: Path) -> Path:
    """Where the train step put the model it keeps (the best checkpoint when a dev set chose one)."""
    import json

    summary = output_dir / "train_summary.json"
    if summary.exists():
        return Path(json.loads(summary.read_text(encoding="utf-8"))["model_dir"])
    return output_dir / "train" / "model"


def _small(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}


# ---------------------------------------------------------------------------------------------- evaluate


def judge_cost(usage: Mapping[str, Any], depth: int) -> dict[str, Any] | None:
    """The judge's cost as a reranker without its response cache: cache hits make its measured s/query too low.

    Wall seconds over the calls actually made (the server's throughput, parallel requests included), times
    the candidates judged per query.
    """
    calls = int(usage.get("calls") or 0)
    if calls == 0:
        return None
    per_call = float(usage.get("wall_seconds") or 0.0) / calls
    return {"uncached_calls": calls, "seconds_per_judgment": per_call, "candidates_per_query": depth,
            "seconds_per_query_uncached": per_call * depth}  # fmt: skip


def run_evaluate(run: RunContext, ctx: StepContext) -> dict[str, Any]:
    from synthrank.evaluate import evaluate_systems, format_table
    from synthrank.rerank import BiEncoderScorer, FusedScorer, RememberingScorer, load_scorer

    e = run.config["evaluate"]
    source = e["data"] or run.config["corpus"]
    try:
        dataset = load_dataset(source, split=e["split"])
    except DataError as exc:
        if e["data"]:
            raise
        logger.warning("the corpus carries no judged queries (%s): evaluating on the held-out synthetic queries", exc)
        dataset = Dataset(name=run.dataset.name, corpus=run.dataset.corpus, queries={}, qrels={})
    if not dataset.qrels:
        return _evaluate_on_dev_groups(run, ctx)
    dataset = subsample_queries(dataset, e["max_queries"])
    retriever = run.retriever() if source == run.config["corpus"] else InMemoryBM25()
    if source != run.config["corpus"]:
        retriever.index(list(dataset.corpus.values()))
    dtype = evaluation_dtype(e["dtype"])
    scorers: dict[str, Any] = {}
    if "zero-shot" in e["baselines"]:
        scorers["zero-shot bi-encoder"] = RememberingScorer(
            BiEncoderScorer(e["zero_shot_model"], batch_size=e["batch_size"], dtype=dtype)
        )
    scorers["synthrank"] = RememberingScorer(
        load_scorer(trained_model_dir(ctx.output_dir), batch_size=e["batch_size"], dtype=dtype)
    )
    fusion = _tune_fusion(run, ctx, scorers) if e["fusion"] else None
    if fusion is not None:
        scorers[FUSED_NAME] = FusedScorer(
            [scorers["synthrank"], scorers["zero-shot bi-encoder"]], fusion["weights"], ["synthrank", "zero-shot"]
        )
    baselines = ["zero-shot bi-encoder"] if "zero-shot bi-encoder" in scorers else []
    # the zero-shot row's scorer when there is one: the same untuned encoder, loaded once
    zero_shot = scorers.get("zero-shot bi-encoder") or BiEncoderScorer(
        e["zero_shot_model"], batch_size=e["batch_size"], dtype=dtype
    )
    first_stage = _serve_first_stage_weight(run, ctx, zero_shot)
    fusions = {FIRST_STAGE_FUSED_NAME: ("synthrank", first_stage["weight"])} if first_stage else {}
    report = evaluate_systems(dataset, retriever, scorers, split=e["split"], top_k=e["top_k"], compare_to=baselines,
                              first_stage_fusions=fusions, show_progress=run.show_progress)  # fmt: skip
    if fusion is not None:
        # the fused row re-read both models' remembered scores: its real cost is both models' time
        by_name = {r.name: r for r in report.systems}
        by_name[FUSED_NAME].seconds += by_name["synthrank"].seconds + by_name["zero-shot bi-encoder"].seconds
    result: dict[str, Any] = {"main": report.to_json(per_query=True), "dtype": dtype}
    if fusion is not None:
        result["fusion"] = fusion
    if first_stage is not None:
        result["first_stage_fusion"] = first_stage
    tables = [format_table(report)]
    if "llm-judge" in e["baselines"]:
        judged = subsample_queries(dataset, e["llm_judge_max_queries"], seed=1)
        from synthrank.label import LLMJudge
        from synthrank.llm import LLMClient

        with LLMClient(llm_config(run.config)) as client:
            scorers["llm judge"] = LLMJudge(client, mode=run.config["label"]["judge_mode"])
            sub = evaluate_systems(judged, retriever, scorers, split=e["split"], top_k=e["llm_judge_top_k"] or e["top_k"],
                                   show_progress=run.show_progress)  # fmt: skip
            usage = client.usage.to_dict()
        depth = e["llm_judge_top_k"] or e["top_k"]
        result["llm_judge_subset"] = {**sub.to_json(per_query=True), "usage": usage,
                                      "judge_cost": judge_cost(usage, depth)}  # fmt: skip
        tables.append(
            f"(subset of {len(judged.judged_queries())} queries, BM25 top-{depth}, with the LLM judge)\n{format_table(sub)}"
        )
    write_json(ctx.path("evaluation.json"), result)
    ctx.path("evaluation.txt").write_text("\n\n".join(tables) + "\n", encoding="utf-8")
    systems = {s["name"]: s["metrics"] for s in result["main"]["systems"]}
    return {"dataset": dataset.name, "split": e["split"], "queries": len(dataset.judged_queries()), "systems": systems,
            "significance": [s for s in result["main"]["significance"] if s.get("metric") == "nDCG@10"],
            **({"fusion": {k: fusion[k] for k in ("weight", "metric")}} if fusion else {}),
            **({"first_stage_fusion": {k: first_stage[k] for k in FIRST_STAGE_KEYS}}
               if first_stage else {})}  # fmt: skip


FUSED_NAME = "synthrank + zero-shot (fused)"
FIRST_STAGE_KEYS = ("weight", "best_weight", "one_se_weight", "rule", "queries")  # what evaluation.json keeps
FIRST_STAGE_FUSED_NAME = "synthrank + BM25 (fused)"


def _pick_first_stage_weight(run: RunContext, ctx: StepContext, zero_shot: Any) -> dict[str, Any] | None:
    """BM25's fusion weight, picked on the run's kept synthetic queries (their mined BM25 candidates, scored by the
    untuned encoder that none of them trained) by ``evaluate.first_stage_rule``; never on an evaluation query."""
    from synthrank.rerank.first_stage import (
        RULE_NAMES,
        pick_first_stage_weight,
        source_passages_of_run,
        synthetic_queries_of_run,
    )
    from synthrank.rerank.serving import weight_text

    candidates, relevant, texts = synthetic_queries_of_run(ctx.output_dir, run.dataset.corpus)
    if not candidates:
        logger.warning("no BM25 fusion row: no kept synthetic query with mined candidates to pick its weight on")
        return None
    rule = run.config["evaluate"]["first_stage_rule"]
    units = source_passages_of_run(ctx.output_dir) if rule == "bagged" else None  # only the bagged rule resamples
    picked = pick_first_stage_weight(candidates, relevant, zero_shot, texts, rule=rule, units=units,
                                     show_progress=run.show_progress)  # fmt: skip
    logger.info("BM25 fusion weight %s (%s rule; one-standard-error %.1f, best %.1f) on %d synthetic queries",
                weight_text(picked["weight"]), RULE_NAMES[rule], picked["one_se_weight"], picked["best_weight"],
                picked["queries"])  # fmt: skip
    return picked


def _serve_first_stage_weight(run: RunContext, ctx: StepContext, zero_shot: Any) -> dict[str, Any] | None:
    """Pick BM25's fusion weight (``evaluate.first_stage_fusion``) and write it into the trained model's folder,
    which the adapters serve by default; with the fusion off, a weight written by an earlier evaluation goes."""
    from synthrank.rerank.first_stage import RULE_NAMES
    from synthrank.rerank.serving import SERVING_FILE, write_serving_settings

    model_dir = trained_model_dir(ctx.output_dir)
    picked = _pick_first_stage_weight(run, ctx, zero_shot) if run.config["evaluate"]["first_stage_fusion"] else None
    if picked is None:
        (model_dir / SERVING_FILE).unlink(missing_ok=True)
        return None
    write_serving_settings(model_dir, picked["weight"], best_weight=picked["best_weight"], queries=picked["queries"],
                           picked_on=f"the run's kept synthetic queries (candidates.jsonl), {RULE_NAMES[picked['rule']]} rule",
                           scorer=run.config["evaluate"]["zero_shot_model"])  # fmt: skip
    return picked


def _mine_without_denoiser(run: RunContext, ctx: StepContext, query_ids: set[str]) -> list[TrainingGroup]:
    """The given queries' groups as the mine step makes them, minus the denoiser (BM25 negatives only)."""
    from synthrank.mine import HardNegativeMiner, read_mining_queries

    config = mining_config(run.config["mine"])
    queries = [
        q for q in read_mining_queries(ctx.path("queries.jsonl"), corpus=run.dataset.corpus) if q.query_id in query_ids
    ]
    return HardNegativeMiner(run.retriever(), run.dataset.corpus, config).mine_groups(queries)


def _tune_fusion(run: RunContext, ctx: StepContext, scorers: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fusion weight of the trained model and the zero-shot model, picked on the held-out synthetic groups."""
    from synthrank.train import DevSet

    dev_file = ctx.path("dev_groups.jsonl")
    if "zero-shot bi-encoder" not in scorers:
        logger.info("no fusion row: the zero-shot baseline is not evaluated")
        return None
    dev_groups = read_groups(dev_file) if dev_file.exists() else []
    if not dev_groups:
        logger.warning("no fusion row: no held-out synthetic groups to pick its weight on (train.dev_fraction)")
        return None
    if run.config["mine"]["denoise_model"]:
        # the denoiser vetoed every negative it preferred to the positive: groups mined with it would
        # make the zero-shot model look perfect on dev; re-mine the dev queries without it
        dev_groups = _mine_without_denoiser(run, ctx, {g.query_id for g in dev_groups})
    dev = DevSet.from_groups(dev_groups, name="held-out synthetic groups")
    tuned = dev.tune_fusion([scorers["synthrank"], scorers["zero-shot bi-encoder"]], show_progress=run.show_progress)
    tuned["table"] = {f"{w:.1f}": v for w, v in tuned["table"].items()}
    tuned["dev_groups"] = len(dev_groups)
    return tuned


def _evaluate_on_dev_groups(run: RunContext, ctx: StepContext) -> dict[str, Any]:
    """No judged queries: rank each held-out synthetic query's positive among its negatives."""
    from synthrank.rerank import BiEncoderScorer, load_scorer
    from synthrank.train import DevSet

    e = run.config["evaluate"]
    dev_groups = read_groups(ctx.path("dev_groups.jsonl"))
    if not dev_groups:
        raise SynthrankError("nothing to evaluate on: the corpus has no qrels and no synthetic query was held out")
    dev = DevSet.from_groups(dev_groups)
    kw = {"batch_size": e["batch_size"], "dtype": evaluation_dtype(e["dtype"])}
    zero_shot = BiEncoderScorer(e["zero_shot_model"], **kw)
    systems = {"zero-shot bi-encoder": dev.evaluate(zero_shot),
               "synthrank": dev.evaluate(load_scorer(trained_model_dir(ctx.output_dir), **kw))}  # fmt: skip
    # a user's own corpus has no judged queries: the served model still gets its BM25 weight
    first_stage = _serve_first_stage_weight(run, ctx, zero_shot)
    write_json(ctx.path("evaluation.json"), {"held_out_synthetic": systems,
                                             **({"first_stage_fusion": first_stage} if first_stage else {})})
    ctx.path("evaluation.txt").write_text(
        "\n".join(f"{name}: {metrics}" for name, metrics in systems.items()) + "\n", encoding="utf-8"
    )
    return {
        "dataset": "held-out synthetic queries",
        "queries": len({g.query_id for g in dev_groups}),
        "systems": systems,
    }


# ---------------------------------------------------------------------------------------------- plan


def _generate_fingerprint(section: Mapping[str, Any]) -> dict[str, Any]:
    """The generate settings, with an exclusion or demonstrations file's content (editing it restarts the step);
    an unset ``exclude_ids``, ``search_task`` or ``demonstrations`` is left out, so run folders from before the
    setting existed are not restarted."""
    out = {k: v for k, v in section.items()
           if not (k in ("exclude_ids", "search_task", "demonstrations") and v is None)}  # fmt: skip
    for key in ("exclude_ids", "demonstrations"):
        source = section.get(key)
        if isinstance(source, (str, Path)) and Path(source).is_file():
            out[f"{key}_sha256"] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return out


def _evaluate_fingerprint(section: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluate settings; ``first_stage_fusion`` on and ``first_stage_rule`` at ``one_se`` are left out, so a
    folder evaluated before those settings existed is not evaluated again (its served weight is that rule's)."""
    unchanged = {"first_stage_fusion": True, "first_stage_rule": "one_se"}
    return {k: v for k, v in section.items() if not (k in unchanged and v == unchanged[k])}


def build_steps(run: RunContext) -> list[Step]:
    """The steps in order, each with the settings that decide its result as its fingerprint."""
    cfg = run.config
    corpus = str(cfg["corpus"])
    mine_cfg = {k: v for k, v in cfg["mine"].items() if k != "elasticsearch"}
    return [
        Step("generate", ["queries.jsonl", "generate_stats.json"], lambda c: run_generate(run, c),
             {"corpus": corpus, "llm": _llm_identity(cfg), "generate": _generate_fingerprint(cfg["generate"])},
             scratch=["rejected.jsonl"]),
        Step("mine", ["candidates.jsonl", "mined_groups.jsonl"], lambda c: run_mine(run, c), {"mine": mine_cfg},
             scratch=["mine_stats.json"]),
        Step("label", ["labels.jsonl", "groups.jsonl"], lambda c: run_label(run, c),
             {"llm": _llm_identity(cfg), "label": cfg["label"]}, scratch=["label_stats.json"]),
        Step("train", ["train_summary.json"], lambda c: run_train(run, c), {"train": _train_fingerprint(cfg["train"])},
             scratch=["train", "dev_groups.jsonl"]),
        Step("evaluate", ["evaluation.json"], lambda c: run_evaluate(run, c), {"evaluate": _evaluate_fingerprint(cfg["evaluate"])},
             scratch=["evaluation.txt"]),
    ]  # fmt: skip
