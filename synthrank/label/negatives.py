"""Topping up labelled groups with mined negatives the judge did not read (the judge reads only the first ranks)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from synthrank.data.groups import read_groups, write_groups


def fill_negatives(labelled_path: Path, mined_path: Path, pool_size: int, *, min_negatives: int = 1) -> tuple[int, int]:
    """Top up each labelled group's negatives with mined ones the judge did not see, up to ``pool_size``.

    The judge reads only the first ranks (where false negatives hide); the mined candidates below
    them are kept as negatives so LCE still gets a full group, while every passage the judge
    called relevant stays out of the negatives. Groups left with fewer than ``min_negatives`` are
    dropped. Returns (negatives added, groups dropped).
    """
    mined: dict[str, list[Any]] = {}
    for group in read_groups(mined_path):
        mined.setdefault(group.query_id, []).extend(group.negatives)
    labelled = read_groups(labelled_path)
    positives: dict[str, set[str]] = {}
    for group in labelled:
        positives.setdefault(group.query_id, set()).add(group.positive.doc_id)
    added = 0
    out = []
    for group in labelled:
        have = {n.doc_id for n in group.negatives}
        extra = [n for n in mined.get(group.query_id, [])
                 if n.doc_id not in have and n.doc_id not in positives[group.query_id]]  # fmt: skip
        room = max(0, pool_size - len(group.negatives))
        chosen = sorted(extra, key=lambda n: (n.rank is None, n.rank or 0))[:room]
        if len(group.negatives) + len(chosen) < min_negatives:
            continue
        added += len(chosen)
        out.append(replace(group, negatives=[*group.negatives, *chosen]))
    write_groups(labelled_path, out)
    return added, len(labelled) - len(out)
