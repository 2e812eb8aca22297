"""The transformers backend on a tiny, randomly initialised Qwen2 model built by the test.

No hub download: the tokenizer is a byte-level BPE trained here on a few lines, the model a
2-layer Qwen2 with random weights, both saved to a temporary directory and loaded back through
the backend's ``local_files_only`` path. A random model writes nonsense, but the schema-guided
decoder must still return JSON that parses and validates, through the whole extractor.
Skipped when the optional ``[hf]`` extra (torch, transformers) is not installed.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from engine.extract import Extractor  # noqa: E402
from engine.extract.hf_backend import TransformersBackend  # noqa: E402
from engine.extract.postprocess import parse_answer  # noqa: E402
from engine.extract.prompt import build_messages  # noqa: E402
from engine.extract.schema import model_json_schema  # noqa: E402

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    '{"facts": [{"predicate": "LIVES_IN", "object": "Berlin"}], "reason": "moved", "sentiment": "neutral"}',
    "I live in Berlin and I love hiking. 我住在上海。Vivo en Madrid.",
    "positive negative neutral LIKES DISLIKES OWNS USES WANTS WORKS_AS HAS_PET HAS_FAMILY",
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = tmp_path_factory.mktemp("tiny-qwen2")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


def test_loads_locally_and_generates_schema_valid_json(tiny_model_dir):
    backend = TransformersBackend(tiny_model_dir, device="cpu")
    schema = model_json_schema()
    first = backend.complete(build_messages("I live in Berlin."), schema, max_tokens=200)
    answer = parse_answer(first.text)  # raises when the JSON or the schema is violated
    assert answer.sentiment in ("positive", "negative", "neutral")
    assert json.loads(first.text)["facts"] == [f.model_dump() for f in answer.facts]
    assert first.prompt_tokens > 0 and first.logprobs
    # Second call: the system prompt's KV cache is reused, only the new user turn is evaluated.
    second = backend.complete(build_messages("我住在上海。"), schema, max_tokens=200)
    parse_answer(second.text)
    assert second.prompt_tokens_evaluated < second.prompt_tokens


def test_whole_extractor_on_the_tiny_model(tiny_model_dir):
    result = Extractor(TransformersBackend(tiny_model_dir, device="cpu")).extract("Vivo en Madrid.", "es")
    assert result.error is None and result.llm_calls == 1 and result.valid_first_try


def test_missing_directory_is_a_clear_error(tmp_path):
    from engine.extract import BackendError

    with pytest.raises(BackendError, match="not found"):
        TransformersBackend(tmp_path / "nope")
