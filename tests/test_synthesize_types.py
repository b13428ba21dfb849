"""Query types per passage: a seeded, balanced rotation that keeps the requests (and cache keys) stable."""

from __future__ import annotations

from collections import Counter

import pytest

from synthrank.data import Document
from synthrank.errors import DataError
from synthrank.synthesize import GenerationConfig, QueryGenerator


def _generator(**cfg: object) -> QueryGenerator:
    return QueryGenerator(client=None, config=GenerationConfig(**cfg))  # type: ignore[arg-type]


def test_types_per_passage_rotates_and_is_balanced() -> None:
    gen = _generator(types_per_passage=2, seed=3)
    docs = [Document(f"d{i}", f"text {i}") for i in range(500)]
    chosen = [gen.types_for(d) for d in docs]
    assert all(len(c) == 2 and len(set(c)) == 2 for c in chosen)
    counts = Counter(t for c in chosen for t in c)
    assert set(counts) == set(GenerationConfig().query_types)
    assert max(counts.values()) / min(counts.values()) < 1.4  # every type gets its share
    again = _generator(types_per_passage=2, seed=3)
    assert [again.types_for(d) for d in docs] == chosen  # seeded: a rerun asks the same


def test_types_per_passage_requests_equal_full_plan_requests() -> None:
    doc = Document("d1", "Glaucoma damages the optic nerve.", title="Glaucoma")
    full, part = _generator(), _generator(types_per_passage=1)
    (slot,) = [s for s in part.plan(doc) if s.query_type != "persona"] or part.plan(doc)[:1]
    same = [s for s in full.plan(doc) if s.key == slot.key]
    assert same and full.request(doc, same[0]) == part.request(doc, slot)  # same cache key either way


def test_types_per_passage_none_or_large_means_all() -> None:
    doc = Document("d1", "x")
    assert _generator().types_for(doc) == GenerationConfig().query_types
    assert _generator(types_per_passage=9).types_for(doc) == GenerationConfig().query_types
    with pytest.raises(DataError) as err:
        GenerationConfig(types_per_passage=0)
    assert "types_per_passage" in str(err.value)


def test_generation_config_from_a_larger_option_set() -> None:
    """The CLI and the run config build the same config from their own option dicts."""
    options = {
        "query_types": ("keyword", "natural"),
        "n_per_type": 2,
        "temperature": None,  # not given: the default stays
        "max_queries": None,  # None is meaningful here: no budget
        "types_per_passage": None,
        "sampling": "random",  # another step's option: ignored
        "max_passages": 10,
    }
    cfg = GenerationConfig.from_options(options)
    assert cfg.query_types == ["keyword", "natural"] and cfg.n_per_type == 2
    assert (
        cfg.temperature == GenerationConfig().temperature and cfg.max_queries is None and cfg.types_per_passage is None
    )
    with pytest.raises(DataError, match="n_per_type"):
        GenerationConfig.from_options({"n_per_type": 0})
