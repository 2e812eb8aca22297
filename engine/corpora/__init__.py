"""Readers of the real external data in ../shared/data used to train and to measure (never shipped,
never needed by the product or the default tests), and the one seeded split rule.

    splits.py      split_of(key): train / dev / test by a hash of the item, written down once
    personaext.py  PersonaExt rows with object spans; RELATION_MAP to graph_schema predicates
    sentiment.py   zh / en / es sentiment corpora
    kvpi.py        zh gold LIVES_IN / GENDER facts from KvPI entailed responses
"""

from engine.corpora.kvpi import KvpiFact, read_kvpi_facts
from engine.corpora.personaext import RELATION_MAP, PersonaRow, read_personaext
from engine.corpora.sentiment import SentimentRow, read_sentiment
from engine.corpora.splits import SPLIT_SEED, Split, split_of

__all__ = [
    "RELATION_MAP",
    "SPLIT_SEED",
    "KvpiFact",
    "PersonaRow",
    "SentimentRow",
    "Split",
    "read_kvpi_facts",
    "read_personaext",
    "read_sentiment",
    "split_of",
]
