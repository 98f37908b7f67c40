"""The text model's state after an image, persisted beside the image embeddings (lfm_edge.vision.prefix_state): a new
process restores it and evaluates only the question, with exactly the logits and greedy tokens of the uncached
path; the key covers the text before the image, the text weights and the context layout; every bad entry (flipped,
truncated, empty, garbage, foreign, refused by llama.cpp) is logged, ignored and rewritten. Tiny model, seconds."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lfm_edge import model as api
from lfm_edge.errors import ModelError
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.prompt import RenderOptions
from lfm_edge.vision.prefix_state import PrefixStates
from lfm_edge.vision.store import DiskStore, pack, pack_state, unpack_state

Converted = Callable[..., tuple[Path, Path]]
GREEDY = GenerationOptions(max_tokens=6, sampling=SamplingParams(temperature=0))
PHOTO = Path(__file__).parent / "images" / "exif_o6_1270x720.jpg"  # several tiles and a thumbnail


def _load(text: Path, cache: Path | None = None, **context: int) -> api.Model:
    return api.load(text, n_ctx=context.pop("n_ctx", 4096), n_threads=2, cache_dir=cache, **context)


def _messages(question: str, before: str | None = None) -> list[dict[str, object]]:
    content: list[dict[str, str]] = [{"type": "text", "text": before}] if before else []
    content += [{"type": "image", "image": str(PHOTO)}, {"type": "text", "text": question}]
    return [{"role": "user", "content": content}]


def _ask(model: api.Model, question: str, before: str | None = None) -> tuple[int, np.ndarray]:
    """(positions reused, logits of the last prompt position) of one prompt in this model."""
    items = model.prompts.build(_messages(question, before), RenderOptions(), model.settings)
    stats = model.engine.prefill(items)
    return stats.reused_positions, model.engine.logits()


def _hits(model: api.Model) -> int:
    store = model.engine.prefix_store
    assert isinstance(store, PrefixStates)
    return store.hits


def _states(folder: Path) -> list[Path]:
    return sorted(folder.glob("v1/*/*.state"))


def test_a_new_process_restores_the_state_after_the_image(pair: tuple[Path, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with _load(pair[0], cache) as first:
        reused, _ = _ask(first, "What is this?")
        assert reused == 0 and _hits(first) == 0
    assert len(_states(cache)) == 1
    with _load(pair[0], cache) as second, _load(pair[0]) as uncached:
        restored, logits = _ask(second, "How many dogs are there?")
        assert second.engine.prefix_store is not None and uncached.engine.prefix_store is None
        _, expected = _ask(uncached, "How many dogs are there?")
        assert _hits(second) == 1 and restored > 64  # the image's positions were not evaluated again
        assert np.array_equal(logits, expected)
        second.engine.reset()
        uncached.engine.reset()
        answer = second.generate("Describe it.", [PHOTO], GREEDY)
        assert answer.timings.reused_tokens > 64
        assert answer.token_ids == uncached.generate("Describe it.", [PHOTO], GREEDY).token_ids


def test_the_key_covers_the_text_before_the_image(pair: tuple[Path, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with _load(pair[0], cache) as model:
        _ask(model, "What is this?", before="Look at my photo:")
    with _load(pair[0], cache) as model, _load(pair[0]) as uncached:
        reused, logits = _ask(model, "What is this?", before="Look at my cat:")
        assert reused == 0 and _hits(model) == 0
        assert np.array_equal(logits, _ask(uncached, "What is this?", before="Look at my cat:")[1])
    assert len(_states(cache)) == 2
    with _load(pair[0], cache) as model:
        assert _ask(model, "Any cats?", before="Look at my photo:")[0] > 64 and _hits(model) == 1


def test_the_key_covers_the_context_layout(pair: tuple[Path, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with _load(pair[0], cache) as model:
        _ask(model, "What is this?")
    for layout in ({"n_ctx": 2048}, {"n_batch": 256}, {"n_seq": 1}):
        with _load(pair[0], cache, **layout) as model:
            assert _ask(model, "What now?")[0] == 0 and _hits(model) == 0, layout


def test_a_text_model_replaced_under_the_same_name_misses(
    pair: tuple[Path, Path], synthetic_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    from convert.api import ConvertOptions, convert_checkpoint

    folder = tmp_path / "model"
    folder.mkdir()
    text, _ = (Path(shutil.copy(path, folder / path.name)) for path in pair)
    cache = tmp_path / "cache"
    with _load(text, cache) as model:
        _ask(model, "What is this?")
    other = convert_checkpoint(synthetic_checkpoint(seed=1), ConvertOptions(tmp_path / "other", "f16", quiet=True))
    stat = text.stat()
    shutil.copyfile(other.text, text)
    os.utime(text, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with _load(text, cache) as model, _load(text) as uncached:
        reused, logits = _ask(model, "What now?")
        assert reused == 0 and _hits(model) == 0
        assert np.array_equal(logits, _ask(uncached, "What now?")[1])


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage", "foreign", "embedding"])
def test_a_bad_state_entry_is_logged_ignored_and_rewritten(
    damage: str, pair: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    with _load(pair[0], cache) as model:
        _ask(model, "What is this?")
        _ask(model, "What is this?", before="Another prefix:")  # a second, valid entry under another key
    path, other = sorted(_states(cache), key=lambda p: p.stat().st_mtime_ns)
    good = path.read_bytes()
    data = bytearray(good)
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) - 7]
    elif damage == "empty":
        data = bytearray()
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "foreign":
        data = bytearray(other.read_bytes())  # a valid entry, renamed: it holds another key
    else:
        data = bytearray(pack("key", np.zeros((2, 2), np.float32)))  # another kind of entry
    path.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING, logger="lfm_edge")
    with _load(pair[0], cache) as model, _load(pair[0]) as uncached:
        reused, logits = _ask(model, "What is this?")
        assert reused == 0 and _hits(model) == 0
        assert np.array_equal(logits, _ask(uncached, "What is this?")[1])
    assert any("is invalid" in r.getMessage() and path.name in r.getMessage() for r in caplog.records)
    assert path.read_bytes() == good  # rewritten: the same prompt gives the same state, bit for bit


def test_a_state_llama_cpp_refuses_is_dropped_and_rewritten(
    pair: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    with _load(pair[0], cache) as model:
        _ask(model, "What is this?")
    with _load(pair[0], cache) as model, _load(pair[0]) as uncached:

        def refuse(state: bytes, seq: int = 0) -> None:
            model.text.clear(seq)  # as llama.cpp leaves a sequence it could not restore
            raise ModelError("llama.cpp refused to restore a saved state")

        monkeypatch.setattr(model.text, "load_state", refuse)
        caplog.set_level(logging.WARNING, logger="lfm_edge")
        reused, logits = _ask(model, "And now?")
        assert reused == 0 and np.array_equal(logits, _ask(uncached, "And now?")[1])
    assert any("refused" in r.getMessage() for r in caplog.records)
    with _load(pair[0], cache) as model:
        assert _ask(model, "Once more?")[0] > 64  # rewritten after the refusal


def test_state_entries_round_trip_and_reject_every_other_file() -> None:
    entry = pack_state("key", b"state bytes")
    assert unpack_state("key", entry) == b"state bytes"
    assert str(unpack_state("other key", entry)) == "holds another key"
    assert str(unpack_state("key", entry[:-1])) == "truncated or padded"
    assert str(unpack_state("key", entry[:10])) == "truncated"
    assert str(unpack_state("key", pack("key", np.zeros((1, 1), np.float32)))) == "not a state entry"
    flipped = bytearray(entry)
    flipped[-40] ^= 1
    assert str(unpack_state("key", bytes(flipped))) == "checksum mismatch"


def test_states_and_embeddings_share_one_lru_bound(tmp_path: Path) -> None:
    store = DiskStore(tmp_path, max_bytes=10_000)
    store.put("old embedding", np.zeros((10, 100), np.float32))  # ~4 KB
    os.utime(next(tmp_path.glob("v1/*/*.emb")), (1, 1))  # least recently used
    store.put_state("newer state", b"s" * 3000)
    store.put_state("newest state", b"n" * 4000)  # past 10 KB: the oldest entry (the embedding) goes
    assert store.get("old embedding") is None
    assert store.get_state("newer state") == b"s" * 3000 and store.get_state("newest state") == b"n" * 4000
