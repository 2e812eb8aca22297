"""Seeded, written-down splits: each item goes to train / dev / test by a hash of its key.

A hash of (seed, key) rather than a shuffle, so an item's split never depends on which other rows
a file holds: adding data never moves a test sentence into training.
"""

from __future__ import annotations

import hashlib
from typing import Literal

Split = Literal["train", "dev", "test"]
SPLIT_SEED = 20261201
# train / dev / test shares, in per-mille
SHARES = (800, 100, 100)


def split_of(key: str, seed: int = SPLIT_SEED) -> Split:
    """The split of an item, from its normalised key (a sentence, a review text)."""
    digest = hashlib.sha256(f"{seed}\x00{' '.join(key.lower().split())}".encode()).digest()
    bucket = int.from_bytes(digest[:4], "big") % 1000
    if bucket < SHARES[0]:
        return "train"
    if bucket < SHARES[0] + SHARES[1]:
        return "dev"
    return "test"
