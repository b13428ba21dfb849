"""The core package's public surface: the main entry points from ``synthrank``, without paying for them on import."""

from __future__ import annotations

import subprocess
import sys

import synthrank


def test_all_names_the_main_entry_points_and_each_resolves() -> None:
    for name in ("load_dataset", "load_scorer", "train_reranker", "TrainConfig", "evaluate_systems", "run_pipeline",
                 "InMemoryBM25", "DataError", "ModelError"):  # fmt: skip
        assert name in synthrank.__all__
    assert set(synthrank.__all__) == {"__version__", *synthrank._EXPORTS}
    for name in synthrank.__all__:
        assert getattr(synthrank, name) is not None, name
    from synthrank.rerank import load_scorer

    assert synthrank.load_scorer is load_scorer
    assert "load_scorer" in dir(synthrank)


def test_importing_synthrank_stays_light() -> None:
    code = "import sys, synthrank; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == ["False", "False"]
