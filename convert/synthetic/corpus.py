"""A deterministic multilingual text corpus to train the synthetic tokenizer's merges on.

The nine languages of the model card, code, numbers and whitespace runs, recombined by a seeded RNG so that BPE
learns merges in every script the real tokenizer covers.
"""

from __future__ import annotations

import numpy as np

PHRASES = {
    "en": "The quick brown fox jumps over the lazy dog while a red bus passes by the old station",
    "ar": "القط الأسود يجلس على النافذة وينظر إلى الشارع المزدحم في المدينة القديمة",
    "zh": "一只小猫坐在窗户旁边 看着 外面 繁忙的 街道 和 古老的 城市 天空 很 蓝",
    "fr": "Le chat noir est assis près de la fenêtre et regarde la rue animée de la vieille ville",
    "de": "Die schwarze Katze sitzt am Fenster und schaut auf die belebte Straße der Altstadt",
    "ja": "黒い 猫が 窓の そばに 座って 古い 町の にぎやかな 通りを 見ています",
    "ko": "검은 고양이가 창문 옆에 앉아 오래된 도시의 붐비는 거리를 보고 있습니다",
    "es": "El gato negro está sentado junto a la ventana y mira la calle concurrida de la ciudad",
    "pt": "O gato preto está sentado perto da janela e olha para a rua movimentada da cidade",
    "code": "def get_weather(location: str, days: int = 3) -> dict: return {'temp': 21, \"ok\": True}",
    "json": '[{"label": "statue", "bbox": [0.3, 0.25, 0.4, 0.65]}, {"name": "f", "arguments": {}}]',
    "misc": "Ünïcödé ñ ç ß œ é è à ù — “quotes” ‘single’ 😀 🚀 🐍 ✓ ∑ π ≤ ≥ 12345 67.89 -0.5 1e-3",
}


def training_corpus(seed: int, lines: int = 6000) -> list[str]:
    """Lines of words drawn from all phrases, plus the phrases themselves; a pure function of the seed."""
    rng = np.random.default_rng(seed)
    words = [word for phrase in PHRASES.values() for word in phrase.split()]
    separators = [" ", " ", " ", "  ", "\n", "\t", ", ", ". ", "\n\n"]
    corpus = list(PHRASES.values())
    for _ in range(lines):
        count = int(rng.integers(3, 14))
        picks = rng.integers(0, len(words), size=count)
        seps = rng.integers(0, len(separators), size=count)
        corpus.append("".join(words[w] + separators[s] for w, s in zip(picks, seps, strict=True)))
    return corpus
