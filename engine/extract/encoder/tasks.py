"""Task adaptation layers on the shared multilingual encoder.

The encoder stays frozen. Its lower layers form a trunk that runs once per batch for every task;
each task (fact tagging, document sentiment) adapts only the top `top_layers` layers with its own
LoRA adapter (peft) and reads them with a small linear head. Inference therefore costs one trunk
pass plus one short top pass per task, and training can cache the trunk's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from engine.extract.encoder.tagging import TAGS

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
TASK_OUTPUTS = {"facts": len(TAGS), "sentiment": len(SENTIMENT_LABELS)}
LORA_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


@dataclass(frozen=True)
class AdapterShape:
    """How a task adapts the encoder; stored with the weights, checked on load."""

    top_layers: int = 4
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.1


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, T] 0/1 → [B, 1, 1, T] additive mask the encoder layers take."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class EncoderTasks(nn.Module):
    def __init__(self, base: nn.Module, tasks: tuple[str, ...], shape: AdapterShape = AdapterShape()) -> None:
        super().__init__()
        layers = base.config.num_hidden_layers
        self.shape = shape
        self.split = layers - shape.top_layers
        for p in base.parameters():
            p.requires_grad_(False)
        self.peft = None
        for task in tasks:
            cfg = LoraConfig(
                r=shape.rank, lora_alpha=shape.alpha, lora_dropout=shape.dropout,
                target_modules=list(LORA_TARGETS), layers_to_transform=list(range(self.split, layers)),
                layers_pattern="layer",
            )
            if self.peft is None:
                self.peft = get_peft_model(base, cfg, adapter_name=task)
            else:
                self.peft.add_adapter(task, cfg)
        hidden = base.config.hidden_size
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, TASK_OUTPUTS[t]) for t in tasks})
        self.tasks = tasks

    @property
    def bert(self) -> nn.Module:
        return self.peft.base_model.model

    def trunk(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states after the shared (frozen, never adapted) lower layers."""
        bert = self.bert
        hidden = bert.embeddings(input_ids=input_ids)
        mask = additive_mask(attention_mask, hidden.dtype)
        for layer in bert.encoder.layer[: self.split]:
            hidden = _layer_out(layer(hidden, attention_mask=mask))
        return hidden

    def top(self, hidden: torch.Tensor, attention_mask: torch.Tensor, task: str) -> torch.Tensor:
        """The task's adapted top layers over the trunk's output."""
        self.peft.set_adapter(task)
        mask = additive_mask(attention_mask, hidden.dtype)
        for layer in self.bert.encoder.layer[self.split :]:
            hidden = _layer_out(layer(hidden, attention_mask=mask))
        return hidden

    def logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor, task: str) -> torch.Tensor:
        """Token logits for `facts` [B, T, tags]; document logits for `sentiment` [B, labels]."""
        out = self.top(hidden, attention_mask, task)
        if task == "sentiment":
            weights = attention_mask.unsqueeze(-1).to(out.dtype)
            out = (out * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.heads[task](out)

    def trainable(self, task: str) -> list[nn.Parameter]:
        """The task's LoRA weights and head: all that training changes."""
        lora = [p for n, p in self.peft.named_parameters() if f".{task}." in n and "lora_" in n]
        for p in lora:
            p.requires_grad_(True)
        return [*lora, *self.heads[task].parameters()]

    def task_state(self, task: str) -> dict[str, torch.Tensor]:
        adapter = get_peft_model_state_dict(self.peft, adapter_name=task)
        head = self.heads[task].state_dict()
        state = {**{f"adapter.{k}": v for k, v in adapter.items()}, **{f"head.{k}": v for k, v in head.items()}}
        return {k: v.detach().clone() for k, v in state.items()}

    def load_task_state(self, task: str, state: dict[str, torch.Tensor]) -> None:
        adapter = {k.removeprefix("adapter."): v for k, v in state.items() if k.startswith("adapter.")}
        head = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
        result = set_peft_model_state_dict(self.peft, adapter, adapter_name=task)
        missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
        if missing:
            raise ValueError(f"adapter weights do not fit this encoder: {missing[:3]}")
        self.heads[task].load_state_dict(head)


def _layer_out(out: object) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out  # type: ignore[index,return-value]
