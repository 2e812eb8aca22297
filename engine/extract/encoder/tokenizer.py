"""XLM-R's fast tokenizer rebuilt from the image's vocabulary (no tokenizer.json needed at run time).

Same pipeline as XLM-R's published tokenizer.json: Precompiled (nmt_nfkc) normaliser + collapse runs
of spaces, Metaspace ("▁", prefix always), Unigram over the scored pieces, ``<s> … </s>`` around each
sequence (``</s></s>`` between a pair).
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from engine.extract.encoder.charsmap import build_precompiled_charsmap
from engine.extract.encoder.image import Vocab

METASPACE = "\u2581"
MASK_TOKEN = "<mask>"  # noqa: S105 - a vocabulary piece, not a secret


def build_tokenizer(vocab: Vocab) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` whose ids equal XLM-R's for any input."""
    unigram = models.Unigram(
        [(piece, float(score)) for piece, score in zip(vocab.pieces, vocab.scores, strict=True)],
        unk_id=vocab.unk_id,
        byte_fallback=False,
    )
    tok = Tokenizer(unigram)
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(vocab.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = vocab.pieces[vocab.bos_id], vocab.pieces[vocab.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos_id), (eos, vocab.eos_id)],
    )
    specials = [vocab.bos_id, vocab.pad_id, vocab.eos_id, vocab.unk_id]
    if MASK_TOKEN in vocab.pieces:
        specials.append(vocab.pieces.index(MASK_TOKEN))
    tok.add_special_tokens([AddedToken(vocab.pieces[i], special=True, normalized=False) for i in specials])
    return tok
