"""Unit-test fixtures: tiny data made on the fly; nothing here touches the network."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Haystack reports usage to PostHog from a background thread; offline its failed uploads log urllib3 warnings
# into whichever test is running (a test counting warnings failed on them in CI)
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    """A 6-document BEIR folder with 3 queries and test qrels."""
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    docs = [
        ("d1", "Glaucoma", "Glaucoma is a group of eye diseases that damage the optic nerve."),
        ("d2", "Diabetes", "Diabetes is a disease in which blood glucose levels are too high."),
        ("d3", "Asthma", "Asthma is a chronic disease of the airways in the lungs."),
        ("d4", "Cataract", "A cataract is a clouding of the lens in the eye that affects vision."),
        ("d5", "Insulin", "Insulin is a hormone that lowers blood glucose; people with diabetes may need it."),
        ("d6", "Migraine", "Migraine headaches cause throbbing pain, often on one side of the head."),
    ]
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for did, title, text in docs:
            fh.write(json.dumps({"_id": did, "title": title, "text": text}) + "\n")
    queries = [("q1", "what damages the optic nerve"), ("q2", "high blood sugar treatment"), ("q3", "lung airway disease")]
    with open(root / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in queries:
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td5\t1\nq3\td3\t1\n", encoding="utf-8"
    )
    return root


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models run ~20x faster on one thread than on two busy ones (thread hand-offs dominate).

    Module-scoped, so every test module starts on one thread even if code under test in an earlier module
    changed torch's thread count (``TrainConfig.num_threads`` sets it and does not restore it).
    """
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in the tests, as in a terminal: a process started in the background by a
    non-interactive shell (`nohup ... &`) inherits SIGINT as ignored, and Python then keeps it ignored, so the
    Ctrl-C tests never saw their interrupt (three failed in a fresh-clone `.ci/run` launched that way)."""
    import signal

    inherited = signal.getsignal(signal.SIGINT)
    if inherited == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if inherited == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(autouse=True)
def _signal_handlers_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with the SIGINT/SIGTERM handlers the session had, and a test that leaves them changed is
    named in a warning: a command run in-process that stopped on a signal leaves SIG_IGN behind by design
    (`stop_cleanly_on_signals(hold_after_stop=True)`, for a process that exits next)."""
    import signal
    import warnings

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        if signal.getsignal(sig) is not handler and handler is not None:
            warnings.warn(f"{request.node.nodeid} left the {sig.name} handler changed; restored", stacklevel=1)
            signal.signal(sig, handler)
