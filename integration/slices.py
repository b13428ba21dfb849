"""Small BEIR folders cut from the shared sets: a few judged queries, their relevant passages, random distractors.

Integration tests that run the whole method need a corpus small enough for minutes on 2 cores but real in its
text, queries and judgements; each writes its slice under its own tmp folder (never into the shared data).
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

from integration.conftest import shared_dataset


def _read_jsonl(folder: Path, stem: str) -> list[dict[str, Any]]:
    path = next((p for p in (folder / f"{stem}.jsonl", folder / f"{stem}.jsonl.gz") if p.exists()), None)
    if path is None:
        raise FileNotFoundError(f"no {stem}.jsonl[.gz] in {folder}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def beir_slice(name: str, split: str, root: Path, *, n_queries: int, n_other: int) -> Path:
    """``root`` as a BEIR folder: the first ``n_queries`` judged queries of ``split`` (as ``qrels/test.tsv``),
    every passage relevant to them and ``n_other`` seeded random others (skips when the set is absent)."""
    src = shared_dataset(name)
    qrels: dict[str, set[str]] = {}
    for line in (src / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    chosen = sorted(qrels)[:n_queries]
    wanted = set().union(*(qrels[q] for q in chosen))
    docs = _read_jsonl(src, "corpus")
    keep = [d for d in docs if d["_id"] in wanted]
    keep += random.Random(0).sample([d for d in docs if d["_id"] not in wanted], n_other)
    queries = [q for q in _read_jsonl(src, "queries") if q["_id"] in chosen]
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in keep))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q in chosen for d in sorted(qrels[q]))
    )
    return root
