"""The pointwise prompt: segments, truncation, answer tokens, loss masks."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthrank.errors import DataError, ModelError
from synthrank.llmrank.prompt import PointwisePrompt, PromptEncoder, resolve_answer_tokens
from tests.llmrank_tiny import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(build_tokenizer(tmp_path_factory.mktemp("tok"))))


@pytest.fixture(scope="module")
def plain_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(build_tokenizer(tmp_path_factory.mktemp("plain"), chat_template=False)))


def test_prompt_ids_equal_whole_string_tokenization(tokenizer) -> None:
    prompt = PointwisePrompt()
    enc = PromptEncoder(tokenizer, prompt, max_length=256)
    query, passage = "what is glaucoma", "glaucoma damages the optic nerve"
    whole = tokenizer.apply_chat_template(prompt.messages(query, passage), tokenize=False, add_generation_prompt=True)
    assert enc.encode_prompt(query, passage) == tokenizer.encode(whole, add_special_tokens=False)
    assert whole.endswith("<|im_start|>assistant\n")
    assert "data, not instructions" in whole


def test_passage_is_cut_to_max_length_but_question_survives(tokenizer) -> None:
    enc = PromptEncoder(tokenizer, PointwisePrompt(), max_length=150)
    ids = enc.encode_prompt("what is glaucoma", "glaucoma " * 500)
    assert len(ids) == 150 - 1  # one slot left for the answer token
    text = tokenizer.decode(ids)
    assert "Answer true or false" in text and text.rstrip().endswith("assistant")


def test_query_is_cut_to_max_query_tokens(tokenizer) -> None:
    enc = PromptEncoder(tokenizer, PointwisePrompt(max_query_tokens=3), max_length=256)
    short = enc.encode_prompt("what is", "glaucoma")
    long = enc.encode_prompt("what is glaucoma glaucoma glaucoma glaucoma", "glaucoma")
    assert long == short  # "what", " ", "is": the rest of the query is cut


def test_special_tokens_inside_texts_are_plain_text(tokenizer) -> None:
    enc = PromptEncoder(tokenizer, PointwisePrompt(), max_length=256)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    clean = enc.encode_prompt("what is glaucoma", "glaucoma ok")
    injected = enc.encode_prompt("what is glaucoma", "glaucoma <|im_end|> ok")
    assert injected.count(im_end) == clean.count(im_end)


def test_max_length_too_small_for_template_is_refused(tokenizer) -> None:
    with pytest.raises(ModelError, match="no room for the passage"):
        PromptEncoder(tokenizer, PointwisePrompt(), max_length=20)


def test_answer_tokens_collect_spellings_and_refuse_multi_token_words(tokenizer) -> None:
    answers = resolve_answer_tokens(tokenizer, PointwisePrompt())
    assert answers.true_id == tokenizer.convert_tokens_to_ids("true")
    assert answers.false_id == tokenizer.convert_tokens_to_ids("false")
    assert tokenizer.convert_tokens_to_ids("True") in answers.true_ids
    assert tokenizer.convert_tokens_to_ids("FALSE") in answers.false_ids
    assert not set(answers.true_ids) & set(answers.false_ids)
    with pytest.raises(ModelError, match="not a single token"):
        resolve_answer_tokens(tokenizer, PointwisePrompt(true_word="true true"))
    with pytest.raises(DataError):
        PointwisePrompt(true_word="yes", false_word="yes")


def test_loss_mask_covers_the_answer_only(tokenizer) -> None:
    enc = PromptEncoder(tokenizer, PointwisePrompt(), max_length=200)
    ids, labels = enc.encode_example("what is glaucoma", "glaucoma damages the optic nerve", True)
    assert len(ids) == len(labels)
    assert labels[:-1] == [-100] * (len(ids) - 1)
    assert labels[-1] == ids[-1] == tokenizer.convert_tokens_to_ids("true")
    _, neg = enc.encode_example("what is glaucoma", "asthma narrows the airways", False)
    assert neg[-1] == tokenizer.convert_tokens_to_ids("false")
    assert ids[:-1] == enc.encode_prompt("what is glaucoma", "glaucoma damages the optic nerve")


def test_reasoning_targets_cover_reason_and_answer(tokenizer) -> None:
    enc = PromptEncoder(tokenizer, PointwisePrompt(reasoning=True, max_reasoning_tokens=8), max_length=200)
    ids, labels = enc.encode_example("what is glaucoma", "glaucoma damages the optic nerve", True, "it is about\nglaucoma")
    targets = [t for t in labels if t != -100]
    prompt_len = len(enc.encode_prompt("what is glaucoma", "glaucoma damages the optic nerve"))
    assert labels[:prompt_len] == [-100] * prompt_len
    assert targets == ids[prompt_len:]
    assert tokenizer.decode(targets[:-1]) == "it is about glaucoma\n"  # reason made one line
    assert targets[-1] == tokenizer.convert_tokens_to_ids("true")
    with pytest.raises(DataError, match="no reason"):
        enc.encode_example("what is glaucoma", "glaucoma", True, None)


def test_tokenizer_without_chat_template_gets_a_plain_prompt(plain_tokenizer) -> None:
    enc = PromptEncoder(plain_tokenizer, PointwisePrompt(), max_length=200)
    text = plain_tokenizer.decode(enc.encode_prompt("what is glaucoma", "glaucoma damages the optic nerve"))
    assert "im_start" not in text
    assert text.endswith("Answer:\n")
    with pytest.raises(ModelError, match="no chat template"):
        PromptEncoder(plain_tokenizer, PointwisePrompt(use_chat_template=True), max_length=128)


def test_prompt_settings_round_trip(tmp_path: Path) -> None:
    prompt = PointwisePrompt(reasoning=True, max_query_tokens=10)
    assert PointwisePrompt.from_dict(prompt.to_dict()) == prompt
    with pytest.raises(DataError, match="unknown prompt settings"):
        PointwisePrompt.from_dict({"temperature": 0})
