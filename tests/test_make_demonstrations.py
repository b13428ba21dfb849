"""benchmarks/make_demonstrations.py: demonstrations drawn from judged queries the evaluation never reads."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmark_modules import load_benchmark


def test_demonstrations_come_from_the_split_and_never_from_what_the_evaluation_reads(tiny_beir: Path, tmp_path: Path) -> None:
    bench = load_benchmark("make_demonstrations")
    # test.tsv judges q1->d1, q2->d2, q2->d5, q3->d3, and here q3->d5 too; the evaluation reads a sample of it: q2
    qrels = tiny_beir / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text(encoding="utf-8") + "q3\td5\t1\n", encoding="utf-8")
    (tiny_beir / "qrels" / "sample.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td5\t1\n", encoding="utf-8")
    lines = bench.demonstration_lines(tiny_beir, "test", 2, 3, 0, "sample")
    # q2 is held out, and so is d5, which q3 also judges; d2 is left to no other query
    assert sorted((line["doc_id"], line["query"]) for line in lines) == [
        ("d1", "what damages the optic nerve"), ("d3", "lung airway disease")]  # fmt: skip
    everything = bench.demonstration_lines(tiny_beir, "test", 4, 3, 0)
    assert sorted({line["doc_id"] for line in everything}) == ["d1", "d2", "d3", "d5"]
    out = tmp_path / "demos.jsonl"
    assert bench.main(["--corpus", str(tiny_beir), "--split", "test", "--passages", "2", "--exclude-split", "sample",
                       "--output", str(out)]) == 0  # fmt: skip
    assert [json.loads(line) for line in out.read_text().splitlines()] == lines
