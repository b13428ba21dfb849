"""The label step as one function, shared by `synthrank label` and `synthrank run`: judge, build groups, fill.

Both commands call :func:`label_to_groups` with a :class:`~synthrank.label.LabelConfig`, so a step run
alone builds the same ``groups.jsonl`` as the whole run with the same settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from synthrank.data.records import Document
from synthrank.errors import DataError
from synthrank.label.labeler import CandidateQuery, LabelConfig, Labeler, LabelReport
from synthrank.label.negatives import fill_negatives


def label_to_groups(
    client: Any,
    corpus: Mapping[str, Document],
    queries: Sequence[CandidateQuery],
    config: LabelConfig,
    output_dir: str | Path,
    *,
    mined_groups: str | Path | None = None,
    pool_size: int | None = None,
    show_progress: bool = False,
) -> tuple[LabelReport, dict[str, Any]]:
    """Judge ``queries`` and write ``labels.jsonl`` and ``groups.jsonl`` in ``output_dir``.

    With ``config.fill_negatives``, each group is then topped up with the negatives of ``mined_groups``
    (the mining step's groups) the judge did not read, up to ``pool_size`` (the mining step's
    ``num_negatives``), and ``config.min_negatives`` applies to the filled groups.

    Returns the labeller's report (``groups`` counts the groups kept after filling) and the stats to write.
    """
    out = Path(output_dir)
    if config.fill_negatives and (mined_groups is None or pool_size is None):
        raise DataError("fill_negatives needs the mined groups and their pool size (mine.num_negatives)",
                        field="fill_negatives")  # fmt: skip
    if mined_groups is not None and config.fill_negatives:
        if Path(mined_groups).resolve() == (out / "groups.jsonl").resolve():
            raise DataError("the mined groups would be overwritten by the labelled ones: label into another folder",
                            path=mined_groups)  # fmt: skip
        if not Path(mined_groups).is_file():
            raise DataError("mined groups file does not exist", path=mined_groups)
    # with filling, the minimum applies to the filled pool (below), not to the judged negatives alone
    labeler_config = replace(config, min_negatives=0) if config.fill_negatives else config
    report = Labeler(config.make_judge(client), corpus, labeler_config).label(
        queries, out, show_progress=show_progress
    )
    stats = report.to_dict()
    if config.fill_negatives:
        assert mined_groups is not None and pool_size is not None
        stats["filled_negatives"], stats["dropped_few_negatives_after_fill"] = fill_negatives(
            out / "groups.jsonl", Path(mined_groups), int(pool_size), min_negatives=int(config.min_negatives)
        )
        report.groups -= stats["dropped_few_negatives_after_fill"]
        stats["groups"] = report.groups
    return report, stats
