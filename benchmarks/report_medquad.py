"""The reproduction report: synthrank on MedQuAD, its ablations, a training-size sweep, out-of-domain checks.

Input: the training data of a `synthrank run` on the MedQuAD *corpus* (benchmarks/configs/medquad.yaml;
`--until label` is enough): LLM-written queries, BM25 candidates, LLM labels. MedQuAD's questions and
qrels are only ever used for evaluation. Rows (each trained with the same trainer and the run's own recipe:
model, architecture, merge with the base, learning rate, max length; so a bi-encoder run's rows are bi-encoders):

* bm25: the first stage (top-k reranked by every other row);
* zero-shot bi-encoder: the backbone (all-MiniLM-L6-v2) as a cosine bi-encoder;
* llm judge: the labelling LLM itself as a pointwise reranker (the expensive teacher; a query subset);
* synthrank (LCE): LLM queries + LLM labels + BM25 hard negatives, LCE loss;
* ablation pointwise: the same groups, BCE on the judge's labels;
* ablation random negatives: the same positives, negatives drawn at random from the corpus;
* ablation no LLM labels: the source passage as the only positive, BM25 top candidates as negatives;
* ablation plain questions: only the "natural question" queries, against all types at the same count;
* ablation listwise: the same groups, a listwise loss on the judge's grades (distillation);
* size sweep: nested subsets of the run's own LLM-query groups (``--sweep-data llm``, the default;
  sizes above what the run wrote are reported as missing), or LLM-free pseudo-queries (title + first
  words of a passage, ``--sweep-data pseudo``) where the local LLM cannot write that many;
* out of domain: BEIR SciFact and the MS MARCO subset with the MedQuAD-trained model (and its fusion
  with the zero-shot model, at the weight the run picked, when the run has one).

Rows that need LLM labels (pointwise BCE and listwise on the judge's labels; "no LLM labels") are
skipped, with the reason in the JSON, when the run did not label (``label.enabled: false``): its
groups are then the "no LLM labels" recipe already.

Every row's result is written to the JSON as soon as it exists; a rerun skips rows already there.

    .venv/bin/python benchmarks/report_medquad.py --run-dir runs/report-medquad

With a model `synthrank run` already trained, rows can reuse it instead of training their own, e.g.
the out-of-domain rows alone for the MedQuAD CPU run:

    .venv/bin/python benchmarks/report_medquad.py --run-dir runs/medquad-cpu \
        --model runs/medquad-cpu/train/model --skip medquad,judge,ablations,sweep \
        --output benchmarks/results/report_medquad_cpu.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"

logger = logging.getLogger("report")


class Results:
    """A JSON file of rows, rewritten after each row so a killed report keeps what it measured."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        self.data.setdefault("rows", {})
        self.data["meta"] = meta

    def has(self, key: str) -> bool:
        return key in self.data["rows"]

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.data["rows"][key] = value
        self.save()

    def save(self) -> None:
        from synthrank.data import write_json

        write_json(self.path, self.data)


def evaluate(dataset: Any, retriever: Any, scorers: dict[str, Any], top_k: int) -> dict[str, Any]:
    from synthrank.evaluate import evaluate_systems

    report = evaluate_systems(dataset, retriever, scorers, split="test", top_k=top_k, show_progress=False)
    return report.to_json(per_query=True)


def system_row(report: dict[str, Any], name: str) -> dict[str, Any]:
    system = next(s for s in report["systems"] if s["name"] == name)
    return {"metrics": system["metrics"], "seconds_per_query": system["seconds_per_query"],
            "per_query": report["per_query"][name]}  # fmt: skip


# The recipe every row trains with: the run's own model and architecture settings (so a bi-encoder run's
# ablations are bi-encoders too), else the cross-encoder defaults the first reports used.
RECIPE_FIELDS = ("model", "architecture", "similarity_temperature", "merge_with_base", "learning_rate", "max_length",
                 "group_size", "batch_size")  # fmt: skip
DEFAULT_RECIPE: dict[str, Any] = {"model": "minilm", "group_size": 8, "batch_size": 8, "learning_rate": 7e-5,
                                  "max_length": 192}  # fmt: skip


def run_recipe(run_dir: Path, max_length: int | None = None) -> dict[str, Any]:
    """The training settings of the run in ``run_dir`` that decide what a row's model is (not how long it trains)."""
    from synthrank.pipeline import train_config_from_section

    path = run_dir / "run_config.json"
    recipe = dict(DEFAULT_RECIPE)
    if path.exists():
        run_config = train_config_from_section(json.loads(path.read_text()).get("train") or {}).to_dict()
        recipe.update({k: run_config[k] for k in RECIPE_FIELDS})
    if max_length:
        recipe["max_length"] = max_length
    return recipe


def train(groups: Sequence[Any], out: Path, *, recipe: dict[str, Any], loss: str, epochs: int, seed: int,
          dev: Any = None) -> Path:  # fmt: skip
    from synthrank.train import TrainConfig, train_reranker

    config = TrainConfig(**recipe, loss=loss, epochs=epochs, seed=seed, save_every=0)
    result = train_reranker(list(groups), out, config, dev=dev, show_progress=False)
    return Path(result.model_dir)


def random_negatives(groups: Sequence[Any], corpus: dict[str, Any], seed: int) -> list[Any]:
    from synthrank.data import Passage

    rng = random.Random(seed)
    ids = sorted(corpus)
    out = []
    for g in groups:
        pool = [d for d in rng.sample(ids, len(g.negatives) + 5) if d != g.positive.doc_id][: len(g.negatives)]
        negs = [Passage(d, corpus[d].full_text("\n"), rank=i + 1) for i, d in enumerate(pool)]
        out.append(replace(g, negatives=negs))
    return out


def significance(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """The core's paired t-test on two rows' per-query nDCG@10, in this report's JSON keys."""
    from synthrank.evaluate import paired_t_test_per_query

    test = paired_t_test_per_query(a, b, "nDCG@10")
    return {"delta": test.delta, "t": test.t_statistic, "p_value": test.p_value, "queries": test.num_queries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=REPO / "runs" / "report-medquad")
    parser.add_argument("--eval-queries", type=int, default=300, help="seeded subsample of test_sample1000")
    parser.add_argument("--top-k", type=int, default=30)
    parser.add_argument("--judge-queries", type=int, default=20)
    parser.add_argument("--judge-top-k", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=None,
                        help="token limit of every model the report trains (default: the run's train.max_length, else 192)")
    parser.add_argument("--sweep", default="100,200,400,800,1600")
    parser.add_argument("--sweep-data", choices=["llm", "pseudo"], default="llm",
                        help="the run's LLM-query groups (nested subsets) or LLM-free pseudo-queries")
    parser.add_argument("--dtype", default="auto",
                        help="scoring dtype of every model: auto (fp32 on CPU), bfloat16 (AMX CPUs: several times faster)")
    parser.add_argument("--ood-queries", type=int, default=300)
    parser.add_argument("--score-max-length", type=int, default=None,
                        help="token limit when scoring (default: each model's own, the length it was trained at)")
    parser.add_argument(
        "--skip", default="", help="comma-separated row groups to skip: medquad,judge,ablations,sweep,ood; "
        "lce skips only the full-set LCE row (the zero-shot row stays: a sweep's reference line)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a cross-encoder already trained on --run-dir's groups (e.g. RUN/train/model from `synthrank run`): "
        "the 'synthrank (LCE)' row, the judge comparison and the OOD rows use it instead of training one",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "report_medquad.json")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    skip = {s for s in args.skip.split(",") if s}
    sys.path.insert(0, str(REPO))
    recipe = run_recipe(args.run_dir, args.max_length)

    from synthrank.data import load_dataset, read_groups
    from synthrank.pipeline import split_dev, subsample_queries
    from synthrank.rerank import BiEncoderScorer, load_scorer
    from synthrank.retrieve import InMemoryBM25
    from synthrank.train import DevSet

    work = args.run_dir / "report"
    work.mkdir(parents=True, exist_ok=True)
    medquad = load_dataset(SHARED / "medquad", split="test_sample1000")
    test = subsample_queries(medquad, args.eval_queries, seed=args.seed)
    bm25 = InMemoryBM25()
    bm25.index(list(medquad.corpus.values()))
    labelled = read_groups(args.run_dir / "groups.jsonl")
    mined = read_groups(args.run_dir / "mined_groups.jsonl")
    train_groups, dev_groups = split_dev(labelled, 0.1, args.seed)
    dev = DevSet.from_groups(dev_groups) if dev_groups else None
    dev_qids = {g.query_id for g in dev_groups}
    queries_meta = {json.loads(line)["query_id"]: json.loads(line) for line in (args.run_dir / "queries.jsonl").open()}
    labels_file = args.run_dir / "labels.jsonl"
    labelled_by_llm = labels_file.exists() and labels_file.stat().st_size > 0  # empty: the run skipped the judge
    results = Results(args.output, {
        "protocol": "MedQuAD test_sample1000, seeded subsample; BM25 top-k reranked; questions never trained on",
        "eval_queries": len(test.judged_queries()), "top_k": args.top_k, "llm": "qwen2.5-coder-1.5b (Q4_K_M, llama.cpp, CPU)",
        "backbone": "all-MiniLM-L6-v2", "train_groups": len(train_groups), "dev_groups": len(dev_groups),
        "synthetic_queries": len(queries_meta), "llm_labels": labelled_by_llm, "scoring_dtype": args.dtype,
        "train_recipe": recipe, "train_max_length": recipe["max_length"], "train_epochs": args.epochs, "score_max_length": args.score_max_length,
        "model_given": args.model is not None,
        "machine": f"{_cpu_name()}, {os.cpu_count()} CPU cores, no GPU", "command": " ".join(sys.argv),
    })  # fmt: skip
    # each model scores at the length it was trained at (saved with it)
    scorer_kw: dict[str, Any] = {"batch_size": 64, "dtype": args.dtype}
    if args.score_max_length:
        scorer_kw["max_length"] = args.score_max_length

    def lce_model() -> Path:
        if args.model is not None:
            return args.model
        return train(train_groups, work / "lce", recipe=recipe, loss="lce", epochs=args.epochs, seed=args.seed, dev=dev)

    def row(key: str, make: Callable[[], Any], **extra: Any) -> None:
        if results.has(key):
            return
        t0 = time.perf_counter()
        scorer = make()
        report = evaluate(test, bm25, {key: scorer}, args.top_k)
        results.put(key, {**system_row(report, key), **extra, "wall_seconds": round(time.perf_counter() - t0, 1)})
        if not results.has("bm25"):
            results.put("bm25", system_row(report, "bm25"))
        logger.info("%s: %s", key, results.data["rows"][key]["metrics"])

    if "medquad" not in skip:
        row("zero-shot bi-encoder", lambda: BiEncoderScorer("minilm", **scorer_kw))
        if "lce" not in skip:
            row("synthrank (LCE)", lambda: load_scorer(lce_model(), **scorer_kw), train_groups=len(train_groups),
                model=str(args.model or work / "lce"))  # fmt: skip
    if "ablations" not in skip:
        # without LLM labels the groups' labels are the mined ones (source passage 1, BM25 negatives 0)
        row("ablation: pointwise BCE", lambda: load_scorer(train(train_groups, work / "bce", recipe=recipe, loss="bce",
                                                                 epochs=args.epochs, seed=args.seed, dev=dev), **scorer_kw),
            train_groups=len(train_groups), labels="LLM judge" if labelled_by_llm else "mined")  # fmt: skip
    if "ablations" not in skip and labelled_by_llm:
        row("ablation: listwise on LLM grades", lambda: load_scorer(train(train_groups, work / "listwise", recipe=recipe,
            loss="listwise", epochs=args.epochs, seed=args.seed, dev=dev), **scorer_kw),
            train_groups=len(train_groups))  # fmt: skip
    elif "ablations" not in skip:
        results.data["skipped"] = {
            "ablation: listwise on LLM grades / no LLM labels": "the run did not label with the LLM "
            "(label.enabled: false): its groups are the no-LLM-labels recipe, and there are no LLM grades"
        }
    if "ablations" not in skip:
        rand = random_negatives(train_groups, medquad.corpus, args.seed)
        row("ablation: random negatives", lambda: load_scorer(train(rand, work / "random-neg", recipe=recipe, loss="lce",
                                                                    epochs=args.epochs, seed=args.seed, dev=dev), **scorer_kw),
            train_groups=len(rand))  # fmt: skip
        no_llm = [g for g in mined if g.query_id not in dev_qids]
        if labelled_by_llm:
            row("ablation: no LLM labels", lambda: load_scorer(train(no_llm, work / "no-llm", recipe=recipe, loss="lce",
                                                                     epochs=args.epochs, seed=args.seed, dev=dev), **scorer_kw),
                train_groups=len(no_llm))  # fmt: skip
        natural = [g for g in train_groups if queries_meta.get(g.query_id, {}).get("query_type") == "natural"]
        if len(natural) >= 8:
            same = random.Random(args.seed).sample(train_groups, len(natural))
            row("ablation: plain questions only", lambda: load_scorer(train(natural, work / "natural", recipe=recipe, loss="lce",
                epochs=args.epochs, seed=args.seed, dev=dev), **scorer_kw), train_groups=len(natural))  # fmt: skip
            row("ablation: all query types, same count", lambda: load_scorer(train(same, work / "all-same", recipe=recipe, loss="lce",
                epochs=args.epochs, seed=args.seed, dev=dev), **scorer_kw), train_groups=len(same))  # fmt: skip
    if "judge" not in skip and not results.has("llm judge"):
        from synthrank.label import LLMJudge
        from synthrank.llm import LLMClient, LLMConfig

        judged = subsample_queries(test, args.judge_queries, seed=args.seed + 1)
        names = ["synthrank (LCE)", "zero-shot bi-encoder"]
        with LLMClient(LLMConfig(model="qwen2.5-coder-1.5b")) as client:
            judge = LLMJudge(client, mode="binary")
            t0 = time.perf_counter()
            rep = evaluate(judged, bm25, {"llm judge": judge}, args.judge_top_k)
            usage = client.usage.to_dict()
        ours = load_scorer(trained_model(args, work), **scorer_kw)
        same_subset = evaluate(judged, bm25, {names[0]: ours, names[1]: BiEncoderScorer("minilm")}, args.judge_top_k)
        results.put("llm judge", {
            **system_row(rep, "llm judge"), "queries": len(judged.judged_queries()), "top_k": args.judge_top_k,
            "usage": usage, "wall_seconds": round(time.perf_counter() - t0, 1),
            "same_subset": {n: system_row(same_subset, n) for n in ["bm25", *names]},
        })  # fmt: skip
    sig = {}
    rows = results.data["rows"]
    if "synthrank (LCE)" in rows:
        # against the baselines, and against every ablation: is the full recipe's gain over each one real?
        for base in ("bm25", "zero-shot bi-encoder", *(k for k in rows if k.startswith("ablation: "))):
            if base in rows:
                sig[f"synthrank (LCE) vs {base}"] = significance(rows["synthrank (LCE)"]["per_query"]["nDCG@10"],
                                                                 rows[base]["per_query"]["nDCG@10"])  # fmt: skip
    results.data["significance_nDCG@10"] = sig
    results.save()
    if "sweep" not in skip:
        run_sweep(args, results, medquad, test, bm25, scorer_kw, work, train_groups, recipe)
        # does each doubling of the data gain for real, and where does the curve pass the zero-shot model?
        points = sorted((r["train_groups"], k) for k, r in rows.items() if k.startswith("sweep: "))
        for (_, smaller), (_, larger) in itertools.pairwise(points):
            sig[f"{larger} vs {smaller}"] = significance(rows[larger]["per_query"]["nDCG@10"],
                                                         rows[smaller]["per_query"]["nDCG@10"])  # fmt: skip
        for _, key in points:
            if "zero-shot bi-encoder" in rows:
                sig[f"{key} vs zero-shot bi-encoder"] = significance(
                    rows[key]["per_query"]["nDCG@10"], rows["zero-shot bi-encoder"]["per_query"]["nDCG@10"])
        results.save()
    if "ood" not in skip:
        run_ood(args, results, work, scorer_kw)
    write_markdown(results.data, args.output.with_suffix(".md"))


def run_sweep(
    args: Any, results: Results, medquad: Any, test: Any, bm25: Any, scorer_kw: dict[str, Any], work: Path,
    train_groups: Sequence[Any], recipe: dict[str, Any],
) -> None:
    """Training-set size sweep: nested subsets of the run's LLM-query groups, or LLM-free pseudo-query groups."""
    from synthrank.rerank import load_scorer

    sizes = [int(s) for s in args.sweep.split(",") if s]
    if args.sweep_data == "llm":
        groups = list(train_groups)
        random.Random(args.seed).shuffle(groups)  # nested: each size holds the smaller ones
        label, llm_free = "LLM-query groups", False
    else:
        groups = pseudo_query_groups(args, medquad, bm25, max(sizes))
        label, llm_free = "pseudo-query groups", True
    missing = [size for size in sizes if size > len(groups)]
    if missing:
        results.data.setdefault("skipped", {})[f"sweep sizes {missing}"] = (
            f"the run has only {len(groups)} {label}; write more queries (generate.max_passages) to measure these"
        )
        results.save()
    for size in sizes:
        key = f"sweep: {size} {label}"
        if results.has(key) or size > len(groups):
            continue
        subset = groups[:size]
        t0 = time.perf_counter()
        model = train(subset, work / f"sweep-{args.sweep_data}-{size}", recipe=recipe, loss="lce", epochs=args.epochs, seed=args.seed)
        report = evaluate(test, bm25, {key: load_scorer(model, **scorer_kw)}, args.top_k)
        results.put(key, {**system_row(report, key), "train_groups": len(subset), "llm_free": llm_free,
                          "wall_seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip


def pseudo_query_groups(args: Any, medquad: Any, bm25: Any, n: int) -> list[Any]:
    from synthrank.mine import HardNegativeMiner, MiningConfig, MiningQuery
    from synthrank.synthesize import sample_passages

    sys.path.insert(0, str(REPO / "benchmarks"))
    from pilot_train_medquad import pseudo_query

    passages = sample_passages(medquad.corpus, n, seed=args.seed + 7, min_chars=50)
    queries = [MiningQuery(f"pq-{d.id}", pseudo_query(d.title, d.text, 12), d.id) for d in passages]
    return HardNegativeMiner(bm25, medquad.corpus, MiningConfig(top_k=30, num_negatives=15)).mine_groups(queries)


FUSED = "synthrank + zero-shot (fused)"


def run_fusion_weight(run_dir: Path) -> float | None:
    """The fusion weight `synthrank run` picked on its held-out synthetic groups, if it evaluated one."""
    path = run_dir / "evaluation.json"
    if not path.exists():
        return None
    fusion = json.loads(path.read_text()).get("fusion") or {}
    return float(fusion["weight"]) if "weight" in fusion else None


def _cpu_name() -> str:
    from synthrank.models.cpu import cpu_name

    return cpu_name()


def trained_model(args: Any, work: Path) -> Path:
    """The LCE model of the report: the one given with --model, or the one the report trained."""
    if args.model is not None:
        return Path(args.model)
    model_dir = work / "lce" / "model"
    if not model_dir.exists():
        model_dir = Path(json.loads((work / "lce" / "metrics.json").read_text())["model_dir"])
    return model_dir


def run_ood(args: Any, results: Results, work: Path, scorer_kw: dict[str, Any]) -> None:
    """The MedQuAD-trained model out of domain: it must not lose to its base model."""
    from synthrank.data import load_dataset
    from synthrank.pipeline import subsample_queries
    from synthrank.rerank import BiEncoderScorer, FusedScorer, RememberingScorer, load_scorer
    from synthrank.retrieve import InMemoryBM25

    model_dir = trained_model(args, work)
    for name, split in (("beir-scifact", "test"), ("agentset-msmarco-subset", "test")):
        key = f"ood: {name}"
        if results.has(key) or not (SHARED / name).exists():
            continue
        data = subsample_queries(load_dataset(SHARED / name, split=split), args.ood_queries, seed=args.seed)
        bm25 = InMemoryBM25()
        bm25.index(list(data.corpus.values()))
        scorers: dict[str, Any] = {"zero-shot bi-encoder": RememberingScorer(BiEncoderScorer("minilm", **scorer_kw)),
                                   "synthrank (LCE)": RememberingScorer(load_scorer(model_dir, **scorer_kw))}  # fmt: skip
        weight = run_fusion_weight(args.run_dir)
        if weight is not None:
            scorers[FUSED] = FusedScorer([scorers["synthrank (LCE)"], scorers["zero-shot bi-encoder"]],
                                         [1.0 - weight, weight], ["synthrank", "zero-shot"])  # fmt: skip
        report = evaluate(data, bm25, scorers, args.top_k)
        rows = {n: system_row(report, n) for n in ["bm25", *scorers]}
        results.put(key, {"systems": rows, "queries": len(data.judged_queries()), "model": str(model_dir),
                          "vs zero-shot": significance(rows["synthrank (LCE)"]["per_query"]["nDCG@10"],
                                                       rows["zero-shot bi-encoder"]["per_query"]["nDCG@10"]),
                          **({"fusion_weight": weight, "fused vs zero-shot": significance(
                              rows[FUSED]["per_query"]["nDCG@10"], rows["zero-shot bi-encoder"]["per_query"]["nDCG@10"])}
                             if weight is not None else {})})  # fmt: skip


def _recipe_line(meta: dict[str, Any]) -> list[str]:
    """What every trained row is (older reports, written before the recipe was recorded, say nothing)."""
    recipe = meta.get("train_recipe")
    if not recipe:
        return []
    merge = f", {recipe['merge_with_base']:g} of the base weights merged back" if recipe.get("merge_with_base") else ""
    return [f"Every trained row: {recipe.get('architecture', 'cross-encoder')} from {recipe['model']}{merge}, "
            f"learning rate {recipe['learning_rate']:g}, max length {recipe['max_length']}, "
            f"{meta.get('train_epochs')} epochs.", ""]


def write_markdown(data: dict[str, Any], path: Path) -> None:
    meta, rows = data["meta"], data["rows"]
    lines = ["# synthrank on MedQuAD: reproduction report", "", f"{meta['protocol']}; {meta['eval_queries']} queries, "
             f"top-{meta['top_k']}; LLM {meta['llm']}; backbone {meta['backbone']}; {meta['synthetic_queries']} synthetic "
             f"queries, {meta['train_groups']} training groups; {meta['machine']}.", "", *_recipe_line(meta),
             "| system | nDCG@10 | MRR@10 | Recall@100 | s/query | training groups |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in rows.items():
        if "metrics" not in r or name == "llm judge":
            continue
        m = r["metrics"]
        lines.append(f"| {name} | {m.get('nDCG@10', 0):.4f} | {m.get('RR@10', m.get('MRR@10', 0)):.4f} | "
                     f"{m.get('R@100', m.get('Recall@100', 0)):.4f} | {r['seconds_per_query']:.4f} | {r.get('train_groups', '')} |")  # fmt: skip
    if "llm judge" in rows:
        j = rows["llm judge"]
        lines += ["", f"LLM judge as reranker ({j['queries']} queries, top-{j['top_k']}), same subset:", "",
                  "| system | nDCG@10 | s/query |", "|---|---|---|",
                  f"| llm judge | {j['metrics']['nDCG@10']:.4f} | {j['seconds_per_query']:.3f} |"]  # fmt: skip
        for n, r in j["same_subset"].items():
            lines.append(f"| {n} | {r['metrics']['nDCG@10']:.4f} | {r['seconds_per_query']:.4f} |")
    if data.get("significance_nDCG@10"):
        lines += ["", "Paired t-tests (nDCG@10):", ""]
        lines += [f"- {k}: delta {v['delta']:+.4f}, p = {v['p_value']:.2g} ({v['queries']} queries)"
                  for k, v in data["significance_nDCG@10"].items()]  # fmt: skip
    for name, r in rows.items():
        if name.startswith("ood: "):
            lines += ["", f"Out of domain, {name[5:]} ({r['queries']} queries): " + ", ".join(
                f"{n} {s['metrics']['nDCG@10']:.4f}" for n, s in r["systems"].items())
                + f"; ours vs zero-shot delta {r['vs zero-shot']['delta']:+.4f}, p = {r['vs zero-shot']['p_value']:.2g}"
                + (f"; fused (weight {r['fusion_weight']}) vs zero-shot delta {r['fused vs zero-shot']['delta']:+.4f}, "
                   f"p = {r['fused vs zero-shot']['p_value']:.2g}" if "fused vs zero-shot" in r else "")]  # fmt: skip
    for what, why in (data.get("skipped") or {}).items():
        lines += ["", f"Not measured: {what}: {why}."]
    path.write_text("\n".join(lines) + "\n")
    sweep = [(r["train_groups"], r["metrics"]["nDCG@10"]) for n, r in rows.items() if n.startswith("sweep: ")]
    llm_free = any(r.get("llm_free") for n, r in rows.items() if n.startswith("sweep: "))
    lce = rows.get("synthrank (LCE)", {})
    if sweep and lce.get("train_groups") and not data.get("meta", {}).get("model_given") and not llm_free:
        sweep.append((lce["train_groups"], lce["metrics"]["nDCG@10"]))  # the full set, same recipe and budget
    if sweep:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        xs, ys = zip(*sorted(sweep), strict=True)
        kind = "pseudo-query" if llm_free else "LLM-query"
        ax.plot(xs, ys, marker="o", label=f"LCE, {kind} groups")
        for name, style in (("bm25", "--"), ("zero-shot bi-encoder", ":")):
            if name in rows:
                ax.axhline(rows[name]["metrics"]["nDCG@10"], linestyle=style, color="grey", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("training groups")
        ax.set_ylabel("nDCG@10 (MedQuAD)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path.with_name(path.stem + "_sweep.png"), dpi=120)


if __name__ == "__main__":
    main()
