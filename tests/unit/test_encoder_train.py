"""A tiny training run on the real base encoder: the loss goes down, adapters save and load back."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the encoder tier needs torch")

from engine.config import Settings  # noqa: E402
from engine.extract.encoder import AdapterShape, EncoderTasks, load_base  # noqa: E402
from engine.extract.encoder.tagging import TAGS, Span, encode_tags  # noqa: E402
from engine.extract.encoder.weights import TaskMeta, load_task, save_task  # noqa: E402
from engine.train.loop import TrainConfig, build_cache, loss_of, predict, train  # noqa: E402

ROWS = [
    ("i love jazz", [Span(start=7, end=11, predicate="LIKES")]),
    ("i live in berlin", [Span(start=10, end=16, predicate="LIVES_IN")]),
    ("my cat is called tom", []),
    ("我是一名护士", [Span(start=4, end=6, predicate="WORKS_AS")]),
    ("me encanta el café", [Span(start=14, end=18, predicate="LIKES")]),
    ("i hate onions", [Span(start=7, end=13, predicate="DISLIKES")]),
]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    model, tokenizer = load_base(Settings().model_cache, shared=False)
    return EncoderTasks(model, ("facts", "sentiment"), AdapterShape(top_layers=2, rank=4)), tokenizer


def test_a_few_steps_lower_the_loss_and_the_weights_round_trip(model_and_tokenizer, tmp_path: Path) -> None:
    model, tokenizer = model_and_tokenizer
    cache = build_cache(model, tokenizer, [t for t, _ in ROWS], max_tokens=32)
    targets = [encode_tags(enc.offsets, spans) for enc, (_, spans) in zip(cache.encoded, ROWS, strict=True)]
    index = list(range(len(ROWS)))
    model.train()
    before = float(loss_of(model, "facts", cache, targets, index).detach())
    config = TrainConfig(epochs=12, batch_size=6, lr=3e-3, head_lr=1e-2, patience=20, seed=1)
    result = train(model, "facts", cache, targets, lambda: {"score": 0.0}, config, score_key="score")
    model.eval()
    after = float(loss_of(model, "facts", cache, targets, index).detach())
    assert after < before * 0.7, (before, after, result.history)
    probs = predict(model, "facts", cache)
    meta = TaskMeta(task="facts", shape={"top_layers": 2, "rank": 4, "alpha": 16, "dropout": 0.1}, labels=list(TAGS))
    save_task(tmp_path, meta, model.task_state("facts"))
    loaded_meta, state = load_task(tmp_path, "facts")
    fresh_base, _ = load_base(Settings().model_cache, shared=False)
    fresh = EncoderTasks(fresh_base, ("facts", "sentiment"), loaded_meta.adapter_shape())
    fresh.load_task_state("facts", state)
    again = predict(fresh, "facts", cache)
    assert all(abs(a - b).max() < 1e-4 for a, b in zip(probs, again, strict=True))
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 5_000_000  # adapters, never the base
