"""The encoder tier's inference form: folded adapters compute what the peft form computes, and the
length-bucketed chunks cover every text once within their token budget."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the encoder tier needs torch")

import torch  # noqa: E402

from engine.extract.encoder.runner import _chunks, encode, pad  # noqa: E402

TEXTS = [
    "I live in Berlin and work as a nurse at the city hospital.",
    "我是一名护士，周末喜欢去公园跑步。",
    "Me encanta el café.",
    "ok",
    "The delivery was late again and the food was cold, I want a refund. My dog hated it too.",
]


@pytest.fixture(scope="module")
def forms():
    from engine.config import Settings
    from engine.extract.encoder.extractor import load_tasks
    from engine.extract.encoder.folded import FoldedTasks
    from engine.extract.encoder.weights import PACKAGED

    tasks, tokenizer, _ = load_tasks(Settings().model_cache, PACKAGED)
    return tasks, FoldedTasks(tasks), tokenizer


def test_folded_adapters_give_the_logits_of_the_peft_form(forms) -> None:
    tasks, folded, tokenizer = forms
    ids, mask = pad([e.ids for e in encode(tokenizer, TEXTS)], tokenizer.pad_token_id)  # padded rows too
    with torch.inference_mode():
        hidden, hidden_folded = tasks.trunk(ids, mask), folded.trunk(ids, mask)
        assert (hidden - hidden_folded)[mask.bool()].abs().max() < 1e-4
        for task in ("facts", "sentiment"):
            want, got = tasks.logits(hidden, mask, task), folded.logits(hidden_folded, mask, task)
            real = mask.bool() if task == "facts" else slice(None)
            assert (want - got)[real].abs().max() < 1e-3, task
            assert torch.equal(want[real].argmax(-1), got[real].argmax(-1)), task


def test_the_folded_form_leaves_the_peft_form_untouched(forms) -> None:
    tasks, folded, _ = forms
    assert sum(p.numel() for n, p in tasks.named_parameters() if "lora_" in n) > 0
    assert not [n for n, _ in folded.named_parameters() if "lora_" in n]


def test_chunks_cover_each_text_once_within_the_budget() -> None:
    lengths = [5, 40, 7, 128, 12, 12, 90, 3] * 20
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    chunks = list(_chunks(order, lengths, 64, 512))
    assert [i for c in chunks for i in c] == order
    assert all(len(c) <= 64 and (len(c) == 1 or len(c) * max(lengths[i] for i in c) <= 512) for c in chunks)
    assert list(_chunks(order, lengths, 64, 10**9))[0] == order[:64]  # no budget: batches of 64 as before
