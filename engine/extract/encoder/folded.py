"""The encoder's tasks in inference form: each task's LoRA adapter folded into its own copy of the
top layers (W + s·BA), every layer run by a lean forward (one fused QKV product, torch's fused
attention), so a batch costs matrix products and little Python.

`EncoderTasks` (peft) stays the form training uses; `FoldedTasks.of(tasks)` is built once when the
encoder tier loads and computes the same function up to float rounding.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention

from engine.extract.encoder.tasks import EncoderTasks, additive_mask


class LeanLayer(nn.Module):
    """One BERT layer (post-norm, GELU) with plain weights; the same function as transformers'
    BertLayer in eval mode."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        att = layer.attention.self
        self.heads, self.head_size = att.num_attention_heads, att.attention_head_size
        self.qkv = _fused((att.query, att.key, att.value))
        self.attention_out = copy.deepcopy(layer.attention.output.dense)
        self.attention_norm = copy.deepcopy(layer.attention.output.LayerNorm)
        self.intermediate = copy.deepcopy(layer.intermediate.dense)
        self.output = copy.deepcopy(layer.output.dense)
        self.output_norm = copy.deepcopy(layer.output.LayerNorm)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = hidden.shape
        q, k, v = (
            self.qkv(hidden).view(batch, tokens, 3, self.heads, self.head_size).permute(2, 0, 3, 1, 4).unbind(0)
        )
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        context = context.transpose(1, 2).reshape(batch, tokens, width)
        attended = self.attention_norm(self.attention_out(context) + hidden)
        return self.output_norm(self.output(F.gelu(self.intermediate(attended))) + attended)


class FoldedTasks(nn.Module):
    """`trunk` and `logits` as in EncoderTasks, for inference only."""

    def __init__(self, tasks: EncoderTasks) -> None:
        super().__init__()
        bert = tasks.bert
        self.embeddings = bert.embeddings
        self.lower = nn.ModuleList(LeanLayer(layer) for layer in bert.encoder.layer[: tasks.split])
        self.tops = nn.ModuleDict({
            task: nn.ModuleList(LeanLayer(_fold(layer, task)) for layer in bert.encoder.layer[tasks.split :])
            for task in tasks.tasks
        })
        self.heads = tasks.heads
        self.tasks = tasks.tasks
        self.eval()

    def trunk(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(input_ids=input_ids)
        mask = additive_mask(attention_mask, hidden.dtype)
        for layer in self.lower:
            hidden = layer(hidden, mask)
        return hidden

    def logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor, task: str) -> torch.Tensor:
        mask = additive_mask(attention_mask, hidden.dtype)
        for layer in self.tops[task]:
            hidden = layer(hidden, mask)
        if task == "sentiment":
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            hidden = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.heads[task](hidden)


def _fused(linears: tuple[nn.Linear, ...]) -> nn.Linear:
    """One Linear computing the given ones side by side (same inputs, outputs concatenated)."""
    fused = nn.Linear(linears[0].in_features, sum(x.out_features for x in linears))
    with torch.no_grad():
        fused.weight.copy_(torch.cat([x.weight for x in linears]))
        fused.bias.copy_(torch.cat([x.bias for x in linears]))
    return fused


def _fold(layer: nn.Module, task: str) -> nn.Module:
    """A copy of a peft-adapted layer whose LoRA-wrapped linears are plain ones with the task's
    update folded in."""
    from peft.tuners.lora import LoraLayer

    folded = copy.deepcopy(layer)
    for name, module in list(folded.named_modules()):
        if not isinstance(module, LoraLayer) or task not in module.lora_A:
            continue
        base = module.get_base_layer()
        linear = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(base.weight + module.get_delta_weight(task))
            if base.bias is not None:
                linear.bias.copy_(base.bias)
        parent, _, child = name.rpartition(".")
        setattr(folded.get_submodule(parent), child, linear)
    return folded
