"""The training loop of one task: the frozen trunk's output is computed once and cached, then only
the task's adapted top layers and head train on it, epoch by epoch, with early stopping on dev."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch import nn

from engine.extract.encoder.runner import Encoded, encode, pad
from engine.extract.encoder.tagging import IGNORE
from engine.extract.encoder.tasks import EncoderTasks

Progress = Callable[[int, int, str], None]  # (done, total, what)


class TrainConfig(BaseModel):
    epochs: int = Field(default=4, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=5e-4, gt=0)
    head_lr: float = Field(default=2e-3, gt=0)
    patience: int = Field(default=1, ge=0)
    seed: int = 13
    max_tokens: int = Field(default=128, ge=8)


class EpochLog(BaseModel):
    epoch: int
    train_loss: float
    dev: dict[str, Any]
    seconds: float


class TrainResult(BaseModel):
    best_epoch: int
    best_score: float
    history: list[EpochLog]
    seconds: float


class TrunkCache:
    """The trunk's hidden states per text (float16, unpadded) and the texts' encodings."""

    def __init__(self, encoded: list[Encoded], hidden: list[torch.Tensor]) -> None:
        self.encoded = encoded
        self.hidden = hidden

    def __len__(self) -> int:
        return len(self.encoded)

    def batch(self, index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(self.hidden[i].shape[0] for i in index)
        size = self.hidden[index[0]].shape[1]
        hidden = torch.zeros((len(index), width, size), dtype=torch.float32)
        mask = torch.zeros((len(index), width), dtype=torch.long)
        for row, i in enumerate(index):
            n = self.hidden[i].shape[0]
            hidden[row, :n] = self.hidden[i].float()
            mask[row, :n] = 1
        return hidden, mask


def build_cache(
    model: EncoderTasks, tokenizer: Any, texts: Sequence[str], *, max_tokens: int, batch_size: int = 64,
    progress: Progress | None = None, pad_id: int = 1,
) -> TrunkCache:
    encoded = encode(tokenizer, texts, max_tokens)
    hidden: list[torch.Tensor | None] = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
    model.eval()
    with torch.inference_mode():
        for k in range(0, len(order), batch_size):
            chunk = order[k : k + batch_size]
            ids, mask = pad([encoded[i].ids for i in chunk], pad_id)
            out = model.trunk(ids, mask)
            for row, i in enumerate(chunk):
                hidden[i] = out[row, : len(encoded[i].ids)].to(torch.float16).clone()
            if progress is not None:
                progress(min(k + batch_size, len(order)), len(order), "encoding (frozen trunk)")
    return TrunkCache(encoded, hidden)  # type: ignore[arg-type]


def _targets(task: str, targets: Sequence[Any], index: Sequence[int], width: int) -> torch.Tensor:
    if task == "sentiment":
        return torch.tensor([targets[i] for i in index], dtype=torch.long)
    out = torch.full((len(index), width), IGNORE, dtype=torch.long)
    for row, i in enumerate(index):
        tags = targets[i]
        out[row, : len(tags)] = torch.tensor(tags, dtype=torch.long)
    return out


def loss_of(model: EncoderTasks, task: str, cache: TrunkCache, targets: Sequence[Any], index: Sequence[int],
            weights: torch.Tensor | None = None) -> torch.Tensor:
    hidden, mask = cache.batch(index)
    logits = model.logits(hidden, mask, task)
    gold = _targets(task, targets, index, hidden.shape[1])
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1),
                                       ignore_index=IGNORE, weight=weights)


def predict(model: EncoderTasks, task: str, cache: TrunkCache, batch_size: int = 64) -> list[np.ndarray]:
    """Per item: token probabilities (facts) or label logits (sentiment)."""
    out: list[np.ndarray] = []
    model.eval()
    with torch.inference_mode():
        for k in range(0, len(cache), batch_size):
            index = list(range(k, min(k + batch_size, len(cache))))
            hidden, mask = cache.batch(index)
            logits = model.logits(hidden, mask, task)
            if task == "facts":
                probs = logits.softmax(-1).numpy()
                out += [probs[r, : cache.hidden[i].shape[0]] for r, i in enumerate(index)]
            else:
                out += list(logits.numpy())
    return out


def train(
    model: EncoderTasks, task: str, cache: TrunkCache, targets: Sequence[Any], evaluate: Callable[[], dict[str, Any]],
    config: TrainConfig, *, score_key: str, progress: Progress | None = None,
    weights: torch.Tensor | None = None, on_best: Callable[[TrainResult], None] | None = None,
) -> TrainResult:
    """AdamW on the task's LoRA weights and head; after each epoch `evaluate()` on dev; the best
    epoch's weights are kept (early stopping after `patience` epochs without improvement).
    `on_best(result so far)` runs with the model in its new best state: a checkpoint, so a run cut
    short on a busy machine still leaves its best epoch on disk."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)  # noqa: S311 - seeded shuffling, not crypto
    params = model.trainable(task)
    head = set(model.heads[task].parameters())
    optimiser = torch.optim.AdamW([
        {"params": [p for p in params if p not in head], "lr": config.lr},
        {"params": list(head), "lr": config.head_lr},
    ], weight_decay=0.01)
    steps = config.epochs * ((len(cache) + config.batch_size - 1) // config.batch_size)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then linear decay to zero
        optimiser, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(steps - warmup, 1))))
    best_score, best_epoch, best_state, stale = -1.0, 0, model.task_state(task), 0
    history: list[EpochLog] = []
    done = 0
    for epoch in range(1, config.epochs + 1):
        t0, order, losses = time.perf_counter(), list(range(len(cache))), []
        rng.shuffle(order)
        model.train()
        model.peft.set_adapter(task)
        for k in range(0, len(order), config.batch_size):
            loss = loss_of(model, task, cache, targets, order[k : k + config.batch_size], weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            done += 1
            if progress is not None:
                progress(done, steps, f"epoch {epoch} loss {np.mean(losses[-50:]):.4f}")
        dev = evaluate()
        history.append(EpochLog(epoch=epoch, train_loss=float(np.mean(losses)), dev=dev,
                                seconds=round(time.perf_counter() - t0, 1)))
        if dev[score_key] > best_score:
            best_score, best_epoch, best_state, stale = dev[score_key], epoch, model.task_state(task), 0
            if on_best is not None:
                on_best(TrainResult(best_epoch=best_epoch, best_score=best_score, history=list(history),
                                    seconds=round(time.perf_counter() - started, 1)))
        else:
            stale += 1
            if stale > config.patience:
                break
    model.load_task_state(task, best_state)
    return TrainResult(best_epoch=best_epoch, best_score=best_score, history=history,
                       seconds=round(time.perf_counter() - started, 1))
