"""Distributed training for real: 2 CPU processes through `accelerate launch` (gloo), against one process.

The trainer splits each step's groups over the processes (``mb[rank::world]``) and weights each share so that
the all-reduced gradient is the one-process gradient of the same effective batch; this test runs both and
compares the weights, then kills one worker with SIGKILL after its second checkpoint and checks that the
relaunched job resumes and ends where the uninterrupted one did.

Mutation seen to fail it: every process training on the same half of each step's groups (``mb[0::world]``):
the per-step losses differ from one process's. (A wrong share weight is invisible here: AdamW with clipping is
scale-invariant, so it is not claimed.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_train import make_groups, tiny_model, weights, write_groups_file  # noqa: F401  (tiny_model: fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = """
import json, os, signal, sys
from synthrank.train import TrainConfig, train_reranker
from synthrank.train.trainer import RerankerTrainer

config = TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))
kill_after = int(os.environ.get("KILL_AFTER_CHECKPOINTS", "0"))
if kill_after:
    saved = RerankerTrainer._checkpoint
    count = [0]

    def checkpoint_then_die(self, s):
        saved(self, s)
        count[0] += 1
        if count[0] == kill_after and s.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # a worker dies mid-run, as an OOM kill would take it

    RerankerTrainer._checkpoint = checkpoint_then_die
train_reranker(sys.argv[2], sys.argv[3], config, show_progress=False)
"""


def _config(model: Path) -> dict[str, Any]:
    return {"model": str(model), "group_size": 4, "batch_size": 4, "epochs": 2, "max_length": 48,
            "learning_rate": 1e-3, "save_every": 2, "num_threads": 1, "precision": "fp32", "seed": 7}  # fmt: skip


def _launch(tmp: Path, groups: Path, out: Path, processes: int, **env: str) -> subprocess.CompletedProcess[str]:
    """``processes`` 1: the plain one-process trainer; more: `accelerate launch --multi_gpu`, which is accelerate's
    multi-process launcher (torchrun) and on a machine without a GPU trains on the CPU over gloo
    (`--cpu --num_processes 2` starts ONE process with accelerate 1.16, so it is not what this tests)."""
    (tmp / "train_script.py").write_text(SCRIPT, encoding="utf-8")
    args = [str(tmp / "train_script.py"), str(tmp / "config.json"), str(groups), str(out)]
    if processes == 1:
        command = [sys.executable, *args]
    else:
        launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
        if launcher is None:
            pytest.skip("accelerate is not installed (pip install 'synthrank[train]')")
        command = [launcher, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})  # fmt: skip


def _share_apart(a: dict[str, Any], b: dict[str, Any], tolerance: float) -> float:
    """The share of weight elements that differ by more than ``tolerance``."""
    assert a.keys() == b.keys()
    apart = sum(int(((a[k].float() - b[k].float()).abs() > tolerance).sum()) for k in a)
    return apart / sum(a[k].numel() for k in a)


def test_two_processes_match_one_and_resume_after_a_worker_is_killed(tmp_path: Path, tiny_model: Path) -> None:  # noqa: F811
    # without dropout: one process draws one mask over the batch, two draw two over their halves
    model = tmp_path / "tiny-no-dropout"
    shutil.copytree(tiny_model, model)
    model_config = json.loads((model / "config.json").read_text())
    model_config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(model_config), encoding="utf-8")
    groups = write_groups_file(tmp_path / "groups.jsonl", make_groups(n=16))
    (tmp_path / "config.json").write_text(json.dumps(_config(model)), encoding="utf-8")

    one = _launch(tmp_path, groups, tmp_path / "one", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _launch(tmp_path, groups, tmp_path / "two", 2)
    assert two.returncode == 0, two.stderr[-3000:]
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["device"].startswith("cpu")
    assert metrics["global_step"] == metrics["total_steps"] == 8 and metrics["completed"]
    # the same effective batch: the same loss at every step, and the same weights but for a few elements whose
    # gradient is ~0, where Adam's first steps (m / sqrt(v) = +-1) follow the sign of summation noise (measured:
    # losses equal to 1e-6, 6e-6 of the elements differ by more than 1e-5)
    single = json.loads((tmp_path / "one" / "metrics.json").read_text())["history"]
    assert [round(h["loss"], 5) for h in metrics["history"]] == [round(h["loss"], 5) for h in single]
    w1, w2 = weights(tmp_path / "one" / "model"), weights(tmp_path / "two" / "model")
    assert _share_apart(w1, w2, 1e-5) < 1e-4

    killed = _launch(tmp_path, groups, tmp_path / "resumed", 2, KILL_AFTER_CHECKPOINTS="2")
    assert killed.returncode != 0  # a worker died after the step-4 checkpoint: the job stopped
    assert (tmp_path / "resumed" / "checkpoints").is_dir() and not (tmp_path / "resumed" / "model").exists()
    resumed = _launch(tmp_path, groups, tmp_path / "resumed", 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _share_apart(weights(tmp_path / "resumed" / "model"), w2, 1e-6) == 0.0
