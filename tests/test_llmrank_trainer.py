"""LoRA SFT on a tiny random LM: answer-only loss, exact resume, outputs that transformers and peft load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthrank.errors import DataError, SynthrankError
from synthrank.llmrank import CausalLMReranker, LoRATrainer, LoRATrainingConfig, SFTExample, is_llmrank_model
from synthrank.llmrank.trainer import _collate
from tests.llmrank_tiny import build_model, toy_examples


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("tiny") / "model")


def _config(tiny: Path, **overrides: object) -> LoRATrainingConfig:
    values: dict = {
        "base_model": str(tiny),
        "max_length": 160,
        "epochs": 2,
        "batch_size": 3,
        "gradient_accumulation_steps": 2,
        "learning_rate": 5e-3,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.1,  # dropout draws from the torch RNG: resume must restore it
        "checkpoint_every": 2,
        "seed": 7,
    }
    values.update(overrides)
    return LoRATrainingConfig(**values)  # type: ignore[arg-type]



@pytest.fixture(autouse=True)
def _fp32_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the exact fp32 math; the bf16 default of AMX CPUs has tests of its own."""
    from synthrank.models import cpu

    monkeypatch.setattr(cpu, "cpu_has_amx", lambda: False)


def test_collate_left_pads_and_masks_everything_but_the_answers() -> None:
    rows = [([5, 6, 7, 8], [-100, -100, -100, 8]), ([5, 9], [-100, 9]), ([1, 2, 3, 4, 5], [-100, -100, -100, 4, 5])]
    inputs, labels, keep = _collate(rows, pad_id=0, device="cpu")
    assert keep == 2  # the longest target (a reason + answer) spans the last two positions
    assert inputs["input_ids"].tolist() == [[0, 5, 6, 7, 8], [0, 0, 0, 5, 9], [1, 2, 3, 4, 5]]
    assert inputs["attention_mask"].tolist() == [[0, 1, 1, 1, 1], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]]
    assert inputs["position_ids"].tolist() == [[0, 0, 1, 2, 3], [0, 0, 0, 0, 1], [0, 1, 2, 3, 4]]
    assert labels.tolist() == [[-100, -100, -100, -100, 8], [-100, -100, -100, -100, 9], [-100, -100, -100, 4, 5]]


def test_resume_after_interruption_is_exact(tiny: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    examples = toy_examples(8)
    full = LoRATrainer(_config(tiny), tmp_path / "full").train(examples, show_progress=False)
    assert full.completed and full.global_step == full.total_steps == 6  # 16 examples / 3 -> 6 batches -> 3 steps x 2 epochs

    part = LoRATrainer(_config(tiny), tmp_path / "part").train(examples, stop_after_steps=3, show_progress=False)
    assert not part.completed and part.global_step == 3 and part.adapter_dir is None
    assert [p.name for p in LoRATrainer(_config(tiny), tmp_path / "part").checkpoints()] == ["step-000002", "step-000003"]
    with pytest.raises(SynthrankError, match="model was written"):
        _ = part.model_dir
    resumed = LoRATrainer(_config(tiny, checkpoint_every=5), tmp_path / "part").train(examples, show_progress=False)
    assert resumed.completed and resumed.global_step == 6

    a = load_file(str(tmp_path / "full" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "part" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and a
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key
    assert [h["loss"] for h in full.metrics["history"]] == [h["loss"] for h in resumed.metrics["history"]]


def test_resume_refuses_a_tampered_checkpoint_without_running_it(tiny: Path, tmp_path: Path) -> None:
    """Caught: ``torch.load(..., weights_only=False)`` when resuming (the pickle's ``exec`` wrote the marker file)."""
    from synthrank.errors import ModelError
    from tests.test_checkpoint import write_tampered_state

    examples = toy_examples(4)
    LoRATrainer(_config(tiny), tmp_path / "run").train(examples, stop_after_steps=2, show_progress=False)
    state = tmp_path / "run" / "checkpoints" / "step-000002" / "trainer_state.pt"
    write_tampered_state(state, tmp_path / "ran.txt")
    with pytest.raises(ModelError, match=rf"refusing to load checkpoint state {state}"):
        LoRATrainer(_config(tiny), tmp_path / "run").train(examples, show_progress=False)
    assert not (tmp_path / "ran.txt").exists()


def test_resume_refuses_other_settings_or_a_fresh_start(tiny: Path, tmp_path: Path) -> None:
    examples = toy_examples(4)
    LoRATrainer(_config(tiny), tmp_path / "run").train(examples, stop_after_steps=1, show_progress=False)
    with pytest.raises(SynthrankError, match="other settings or examples"):
        LoRATrainer(_config(tiny, learning_rate=1e-3), tmp_path / "run").train(examples, show_progress=False)
    with pytest.raises(SynthrankError, match="other settings or examples"):
        LoRATrainer(_config(tiny), tmp_path / "run").train(toy_examples(5), show_progress=False)
    with pytest.raises(SynthrankError, match="holds checkpoints"):
        LoRATrainer(_config(tiny), tmp_path / "run").train(examples, resume=False, show_progress=False)


def test_training_learns_and_writes_loadable_adapter_and_merged_model(tiny: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # an easy signal: "alpha" passages are relevant, "beta" passages are not
    examples = []
    for i, topic in enumerate(["glaucoma", "asthma", "anemia", "insulin", "migraine", "diabetes"]):
        examples.append(SFTExample(f"what is {topic}", f"alpha {topic}", True, None, f"q{i}", f"a{i}"))
        examples.append(SFTExample(f"what is {topic}", f"beta {topic}", False, None, f"q{i}", f"b{i}"))
    cfg = _config(
        tiny, epochs=30, batch_size=4, gradient_accumulation_steps=1, learning_rate=2e-2, lora_r=8, lora_alpha=16,
        lora_dropout=0.0, checkpoint_every=0,
    )
    before = CausalLMReranker(tiny).score_pairs([e.query for e in examples], [e.passage for e in examples])
    result = LoRATrainer(cfg, tmp_path / "out").train(examples, show_progress=False)
    history = result.metrics["history"]
    assert np.mean([h["loss"] for h in history[-5:]]) < 0.5 * np.mean([h["loss"] for h in history[:5]])

    labels = np.array([e.label for e in examples])
    after = CausalLMReranker(tmp_path / "out").score_pairs([e.query for e in examples], [e.passage for e in examples])
    assert after[labels].min() > after[~labels].max()  # the tuned model separates the classes...
    assert not before[labels].min() > before[~labels].max()  # ...the random one did not

    adapter_scores = CausalLMReranker(result.adapter_dir, merge_adapter=False).score_pairs(  # type: ignore[arg-type]
        [e.query for e in examples], [e.passage for e in examples]
    )
    np.testing.assert_allclose(adapter_scores, after, rtol=0, atol=1e-5)  # merged == base + adapter

    assert result.model_dir == tmp_path / "out" / "merged" and is_llmrank_model(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "adapter" / "llmrank.json").read_text())
    assert meta["kind"] == "adapter" and meta["max_length"] == 160 and meta["prompt"]["true_word"] == "true"
    base = AutoModelForCausalLM.from_pretrained(json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"])
    assert isinstance(PeftModel.from_pretrained(base, str(tmp_path / "out" / "adapter")), PeftModel)
    assert AutoModelForCausalLM.from_pretrained(str(tmp_path / "out" / "merged")) is not None
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["completed"] and metrics["data"] == {"examples": 12, "positives": 6, "negatives": 6}
    assert "LoRA" in (tmp_path / "out" / "README.md").read_text()

    # a finished run is not trained again
    again = LoRATrainer(cfg, tmp_path / "out").train(examples, show_progress=False)
    assert again.metrics["train_seconds"] == metrics["train_seconds"]


def test_reasoning_training_runs(tiny: Path, tmp_path: Path) -> None:
    from synthrank.llmrank import PointwisePrompt

    cfg = _config(tiny, max_length=200, epochs=1, merge=False, prompt=PointwisePrompt(reasoning=True, max_reasoning_tokens=6))
    result = LoRATrainer(cfg, tmp_path / "r").train(toy_examples(4), show_progress=False)
    assert result.merged_dir is None and result.model_dir == tmp_path / "r" / "adapter"
    assert np.isfinite(result.metrics["final_loss"])
    with pytest.raises(DataError, match="no reason"):
        LoRATrainer(cfg, tmp_path / "r2").train([SFTExample("q", "p", True), SFTExample("q", "n", False)], show_progress=False)


def test_bad_inputs_are_refused(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no training examples"):
        LoRATrainer(_config(tiny), tmp_path / "a").train([], show_progress=False)
    with pytest.raises(DataError, match="both relevant and non-relevant"):
        LoRATrainer(_config(tiny), tmp_path / "b").train([SFTExample("q", "p", True)], show_progress=False)
    with pytest.raises(DataError, match="batch_size"):
        LoRATrainingConfig(batch_size=0)
    with pytest.raises(DataError, match="unknown training settings"):
        LoRATrainingConfig.from_dict({"lr": 1})
    cfg = LoRATrainingConfig.from_dict({"prompt": {"reasoning": True}, "epochs": 2})
    assert cfg.prompt.reasoning and LoRATrainingConfig.from_dict(cfg.to_dict()) == cfg


def test_bf16_lora_training_on_an_amx_cpu(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the CPU has AMX the base runs in bf16 under autocast; LoRA weights and the saved adapter stay fp32."""
    import torch
    from safetensors.torch import load_file

    from synthrank.models import cpu

    monkeypatch.setattr(cpu, "cpu_has_amx", lambda: True)
    seen: set[torch.dtype] = set()
    real_linear = torch.nn.functional.linear

    def spy(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        out = real_linear(x, *args, **kwargs)  # type: ignore[arg-type]
        seen.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    result = LoRATrainer(_config(tiny, epochs=1, checkpoint_every=0), tmp_path / "out").train(
        toy_examples(), show_progress=False
    )
    monkeypatch.undo()
    assert seen == {torch.bfloat16}
    assert result.metrics["bf16"] is True
    adapter = load_file(str(result.adapter_dir / "adapter_model.safetensors"))  # type: ignore[operator]
    assert adapter and all(t.dtype == torch.float32 for t in adapter.values())
    assert all(np.isfinite(h["loss"]) for h in result.metrics["history"])
