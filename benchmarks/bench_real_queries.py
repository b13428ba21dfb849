"""Are the synthetic queries what holds the trained model back? The same recipe trained on real training queries.

Outside MedQuAD the default recipe's model stays within 0.01 of the zero-shot encoder on the real test queries
(scorecard). Either the LLM's queries teach it nothing new (wrong register, too easy), or this backbone and budget
cannot gain from any ~170 queries. This benchmark tells the two apart on a corpus that ships a *training* split of
real queries with qrels (BEIR SciFact: 809 claims, disjoint from its 300 test claims): it trains the run's own
train settings (backbone, loss, epochs, merge, held-out synthetic dev set, seed) on

* ``synthetic``: the run's own training groups (what the scorecard row trains on),
* ``real-N``: N real training queries (a seeded sample; N = the synthetic row's group count, and more), each
  with its judged positive and BM25 negatives mined by the run's own mining settings (the qrels' positives never
  mined as negatives),

and evaluates each on the test queries, alone and fused with BM25 at the run's one-standard-error weight (picked on
its synthetic queries, as the scorecard does). The named peer is the ``synthetic`` row: every real row is printed
against it and against the zero-shot encoder (paired t-tests over test queries). Test queries only score; no
setting is chosen here.

Which of the LLM's queries mislead? ``--synthetic-subset`` trains the synthetic row on a part of the run's groups
(picked before the run's own train/dev split, then split as the run splits): ``long`` (no keyword-type query and
none under five words: generic queries whose BM25 negatives are likely relevant too), ``bm25-hard`` (those whose
source passage was not BM25's first hit in the round-trip filter), or ``random-N`` (a seeded N of them, the
control of equal size); the row is named ``synthetic-SUBSET``.

    .venv/bin/python benchmarks/bench_real_queries.py --run runs/scorecard-xeon/beir-scifact-large@quick-2ep

Writes ``benchmarks/results/real_queries.json`` after every row (a rerun skips the rows it holds).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # scorecard.py: its evaluator, training, weight pick and paired tests
logger = logging.getLogger("real_queries")


def real_training_groups(corpus_dir: Path, split: str, size: int | None, seed: int, mine_section: dict[str, Any],
                         corpus: dict[str, Any]) -> list[Any]:  # fmt: skip
    """Groups for ``size`` real queries of ``split`` (all with None): the qrels' positives, BM25 negatives."""
    from synthrank.data import load_dataset
    from synthrank.mine import MiningQuery, mine_hard_negatives
    from synthrank.pipeline.stages import mining_config

    dataset = load_dataset(corpus_dir, split=split)
    judged = sorted(
        q for q, rels in dataset.qrels.items() if any(g > 0 for g in rels.values()) and q in dataset.queries
    )
    picked = judged if size is None or size >= len(judged) else sorted(random.Random(seed).sample(judged, size))
    positives = {q: {d for d, g in dataset.qrels[q].items() if g > 0 and d in corpus} for q in picked}
    queries = [MiningQuery(f"real-{q}", dataset.queries[q].text, min(positives[q])) for q in picked if positives[q]]
    config = mining_config(mine_section)
    return mine_hard_negatives(queries, corpus, config=config,
                               positives={f"real-{q}": ids for q, ids in positives.items()})  # fmt: skip


SUBSETS = ("long", "bm25-hard", "random-N")


def synthetic_subset(name: str, seed: int = 0) -> Callable[[list[Any]], list[Any]]:
    """The groups a ``--synthetic-subset`` keeps (see the module's docstring)."""
    if name == "long":
        return lambda groups: [
            g for g in groups if g.meta.get("query_type") != "keyword" and len(g.query.split()) >= 5
        ]
    if name == "bm25-hard":
        return lambda groups: [g for g in groups if (g.meta.get("roundtrip_rank") or 0) >= 2]
    if name.startswith("random-") and name.removeprefix("random-").isdigit():
        size = int(name.removeprefix("random-"))

        def sample(groups: list[Any]) -> list[Any]:
            if size > len(groups):
                raise ValueError(f"{name}: the run holds only {len(groups)} groups")
            return random.Random(seed).sample(sorted(groups, key=lambda g: g.query_id), size)

        return sample
    raise ValueError(f"unknown synthetic subset {name!r}; one of {', '.join(SUBSETS)}")


def positives_in_first_stage(groups: list[Any]) -> dict[str, float]:
    """How easy the training queries are for BM25: the share of groups whose positive is its first hit, and the
    share whose positive it did not retrieve in its top-k at all."""
    ranks = [g.positive.rank for g in groups]
    return {"first": round(sum(r == 1 for r in ranks) / len(ranks), 3),
            "outside_top_k": round(sum(r is None for r in ranks) / len(ranks), 3)}  # fmt: skip


def compare(rows: dict[str, Any]) -> None:
    """Each trained row against the zero-shot encoder (alone; served: also the zero-shot model fused alike, what
    training adds to the served system) and against the synthetic row of its seed and tag."""
    from scorecard import paired

    zero = rows["zero-shot"]
    for key, row in rows.items():
        if key == "zero-shot":
            continue
        row["vs_zero_shot"] = paired(row["per_query"], zero["per_query"])
        row["served"]["vs_zero_shot"] = paired(row["served"]["per_query"], zero["per_query"])
        row["served"]["vs_zero_shot_served"] = paired(row["served"]["per_query"], zero["served"]["per_query"])
        name, seed = key.split("/")
        tag = name.split("-", 2)[2] if name.startswith("real-") and name.count("-") >= 2 else ""
        peer_key = row.get("peer") or (f"synthetic{'-' + tag if tag else ''}/{seed}" if name.startswith("real-") else None)
        peer = rows.get(peer_key) if peer_key else None  # a subset's peer: the whole synthetic row of its recipe
        if peer is not None:
            row["vs_synthetic"] = paired(row["per_query"], peer["per_query"])
            row["served"]["vs_synthetic"] = paired(row["served"]["per_query"], peer["served"]["per_query"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a scorecard run folder (its data and settings)")
    parser.add_argument("--train-split", default="train", help="the corpus's split of real training queries")
    parser.add_argument("--sizes", default="same,all", help="real queries per row: numbers, 'same' (as many as "
                        "the synthetic row's groups) or 'all'")  # fmt: skip
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--train", default="", help="train settings laid over the run's for every row, as JSON "
                        "(e.g. '{\"merge_with_base\": 0.0}'); the rows are then named with --tag")  # fmt: skip
    parser.add_argument("--tag", default="", help="appended to the row names of this invocation (after a '-')")
    parser.add_argument("--synthetic-subset", default=None, help=f"train the synthetic row on part of the run's "
                        f"groups: {', '.join(SUBSETS)} (only with --sizes '')")  # fmt: skip
    parser.add_argument("--top-k", type=int, default=30)
    parser.add_argument("--dtype", default=None, help="scoring dtype (default: bf16 where the CPU has it)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "real_queries.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import scorecard

    folder: Path = args.run
    try:
        corpus_name = scorecard.corpus_of_run(folder)
    except ValueError as exc:
        parser.error(str(exc))
    corpus = scorecard.CORPORA[corpus_name]
    dtype = args.dtype or scorecard.evaluation_dtype()
    config = json.loads((folder / "run_config.json").read_text(encoding="utf-8"))
    overlay = json.loads(args.train) if args.train else None
    if overlay and not args.tag:
        parser.error("--train changes the recipe: name its rows with --tag")
    tag = f"-{args.tag.lstrip('-')}" if args.tag else ""  # synthetic-TAG is the peer of real-N-TAG
    keep = None
    if args.synthetic_subset:
        if args.sizes:
            parser.error("--synthetic-subset trains the synthetic row alone: give --sizes ''")
        try:
            keep = synthetic_subset(args.synthetic_subset)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        train, dev, section = scorecard.training_split(folder, overlay, keep)
    except ValueError as exc:
        parser.error(str(exc))
    synthetic_name = f"synthetic-{args.synthetic_subset}{tag}" if args.synthetic_subset else f"synthetic{tag}"
    from synthrank.data import write_json
    from synthrank.train import DevSet

    dev_set = DevSet.from_groups(dev) if dev else None
    out: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {}
    if out.get("run") != str(folder):
        out = {"benchmark": "real_queries", "run": str(folder), "corpus": corpus_name, "rows": {}}
    command = "benchmarks/bench_real_queries.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out.pop("command", None)  # one invocation per recipe: every command that wrote rows is kept
    out["commands"] = [*(c for c in out.get("commands", []) if c != command), command]
    out.update(train_split=args.train_split, dtype=dtype, peer="synthetic")
    if keep is None:  # a subset's counts are its row's
        out.update(synthetic_groups=len(train), dev_groups=len(dev))

    def save() -> None:
        write_json(args.output, out, indent=1)

    evaluator = scorecard.Evaluator(corpus, args.top_k, dtype)
    if "weight" not in out:
        out["weight"] = scorecard.pick_bm25_weight(folder, evaluator.dataset.corpus, scorecard._zero_shot(evaluator))
        out["weight"].pop("table", None)
        save()
    weight = float(out["weight"]["weight_1se"])
    rows = out["rows"]
    if "zero-shot" not in rows:
        cell, ranking = evaluator.zero_shot()
        rows["zero-shot"] = {**cell, "served": evaluator.fused_with_bm25(ranking, weight)}
        save()
    evaluator.run("bm25", None)  # the first stage every fused row shares
    corpus_dir = corpus.path()
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        plan: list[tuple[str, Any]] = [(synthetic_name, None)]
        for size in [s for s in args.sizes.split(",") if s]:
            n = len(train) if size == "same" else None if size == "all" else int(size)
            plan.append((f"real-{'all' if n is None else n}{tag}", n))
        for name, size in plan:
            key = f"{name}/seed{seed}"
            if key in rows and "positives_in_first_stage" in rows[key]:
                continue
            if name.startswith("synthetic"):
                groups = train
            else:
                groups = real_training_groups(corpus_dir, args.train_split, size, seed, config["mine"],
                                              evaluator.dataset.corpus)  # fmt: skip
            if key in rows:  # trained by an earlier invocation: only the statistic added since
                rows[key]["positives_in_first_stage"] = positives_in_first_stage(groups)
                continue
            work = folder / "bench_real_queries" / key.replace("/", "-")
            t0 = time.perf_counter()
            model_dir = scorecard.train_ours(groups, work, section, seed, dev_set)
            seconds = time.perf_counter() - t0
            cell, ranking = evaluator.run_with_ranking(name, evaluator.scorer(model_dir))
            rows[key] = {**cell, "groups": len(groups), "train_seconds": round(seconds, 1), "train": section,
                         "positives_in_first_stage": positives_in_first_stage(groups),
                         "served": evaluator.fused_with_bm25(ranking, weight)}  # fmt: skip
            if keep is not None and name == synthetic_name:
                rows[key].update(subset=args.synthetic_subset, dev_groups=len(dev), peer=f"synthetic{tag}/seed{seed}")
            shutil.rmtree(work, ignore_errors=True)
            gc.collect()
            compare(rows)
            save()
            alone, served = rows[key]["vs_zero_shot"], rows[key]["served"]["vs_zero_shot_served"]
            against = rows[key].get("vs_synthetic")
            logger.info("%s: %d groups, nDCG@10 %.4f (%+.4f vs zero-shot, p %.2g%s); served at w %.2f %.4f (%+.4f "
                        "vs the zero-shot model served alike)", key, len(groups), cell["metrics"]["nDCG@10"],
                        alone["delta"], alone["p_value"],
                        f"; {against['delta']:+.4f} vs synthetic, p {against['p_value']:.2g}" if against else "",
                        weight, rows[key]["served"]["metrics"]["nDCG@10"], served["delta"])  # fmt: skip
    compare(rows)  # rows of earlier invocations gain comparisons added since
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
