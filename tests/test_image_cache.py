"""The image-embedding cache (lfm_edge.vision.cache / store): content keys, persistence across processes, and every
bad input of issue I: corrupt, truncated, foreign and garbage entries, an unwritable folder, a full disk, a
read-only disk, two processes sharing a folder. The encoder here is a stand-in with the real identity rule (sha256
of its weights file), so each case runs in milliseconds; test_image_cache_model.py does the same with the model."""

from __future__ import annotations

import errno
import logging
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lfm_edge.vision import CropEncoder
from lfm_edge.vision import store as store_module
from lfm_edge.vision.cache import EmbeddingCache, crop_digest
from lfm_edge.vision.mtmd import file_digest
from lfm_edge.vision.store import DiskStore, entry_name, pack, unpack

ROOT = Path(__file__).resolve().parents[1]
KNOBS = "settings"


class CountingEncoder:
    """Embeddings that depend on the crop and on the weights file's bytes; counts encoder calls."""

    def __init__(self, weights: Path) -> None:
        self.weights = weights
        self.calls = 0

    @property
    def identity(self) -> str:
        return f"fake:{file_digest(self.weights)}"

    def encode(self, crop: np.ndarray) -> np.ndarray:
        self.calls += 1
        seed = int.from_bytes(self.weights.read_bytes()[:4], "little") + int(crop.sum())
        return np.random.default_rng(seed).standard_normal((4, 8)).astype(np.float32)

    def close(self) -> None:
        pass


def crop(value: int) -> np.ndarray:
    return np.full((32, 32, 3), value, dtype=np.uint8)


def embed(cache: EmbeddingCache, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    """What PromptBuilder does per crop: look up, else encode and store."""
    digest = crop_digest(pixels)
    found, source = cache.lookup(digest, KNOBS)
    if found is not None:
        return found, source
    values = cache.encoder.encode(pixels)
    cache.store(digest, KNOBS, values)
    return values, "encoder"


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "mmproj-F16.gguf"
    path.write_bytes(b"\x01\x02\x03\x04" * 64)
    return path


def fresh(weights: Path, folder: Path, max_bytes: int = 1 << 20) -> EmbeddingCache:
    """A cache as a new process would open it (nothing in memory)."""
    return EmbeddingCache(CountingEncoder(weights), folder, max_bytes)


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("v1/*/*.emb"))


def test_the_fake_encoder_implements_the_interface(weights: Path) -> None:
    assert isinstance(CountingEncoder(weights), CropEncoder)


def test_a_new_process_skips_the_encoder(weights: Path, tmp_path: Path) -> None:
    first = fresh(weights, tmp_path / "cache")
    expected, source = embed(first, crop(7))
    assert source == "encoder" and len(entries(tmp_path / "cache")) == 1
    second = fresh(weights, tmp_path / "cache")
    found, source = embed(second, crop(7))
    assert source == "disk" and second.encoder.calls == 0  # type: ignore[attr-defined]
    assert np.array_equal(found, expected)
    assert embed(second, crop(7))[1] == "memory"


def test_memory_only_cache_never_touches_the_disk(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    cache = EmbeddingCache(CountingEncoder(weights))
    assert embed(cache, crop(1))[1] == "encoder" and embed(cache, crop(1))[1] == "memory"
    assert list(home.iterdir()) == []


def test_the_key_holds_pixels_knobs_and_weights(weights: Path, tmp_path: Path) -> None:
    cache = fresh(weights, tmp_path / "cache")
    embed(cache, crop(3))
    assert embed(fresh(weights, tmp_path / "cache"), crop(4))[1] == "encoder"  # other pixels
    other_knobs = fresh(weights, tmp_path / "cache")
    assert other_knobs.lookup(crop_digest(crop(3)), "other settings") == (None, "")
    # Same name, same size, same mtime, other bytes: another identity, so a miss and a different embedding.
    stat = weights.stat()
    weights.write_bytes(b"\x09\x02\x03\x04" * 64)
    import os

    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replaced = fresh(weights, tmp_path / "cache")
    found, source = embed(replaced, crop(3))
    assert source == "encoder"
    assert np.array_equal(found, CountingEncoder(weights).encode(crop(3)))


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage", "foreign"])
def test_a_bad_entry_is_logged_ignored_and_rewritten(
    damage: str, weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "cache"
    expected, _ = embed(fresh(weights, folder), crop(5))
    other, _ = embed(fresh(weights, folder), crop(6))
    path = next(p for p in entries(folder) if unpack_ok(p, weights, crop(5)))
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) - 7]
    elif damage == "empty":
        data = bytearray()
    elif damage == "garbage":
        data = bytearray(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    else:  # another crop's valid entry under this crop's name (copied or renamed by hand)
        data = bytearray(next(p for p in entries(folder) if p != path).read_bytes())
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="lfm_edge.vision.store"):
        found, source = embed(fresh(weights, folder), crop(5))
    assert source == "encoder" and np.array_equal(found, expected)
    assert any("is invalid" in record.message for record in caplog.records)
    again, source = embed(fresh(weights, folder), crop(5))  # rewritten: a hit again, the right values
    assert source == "disk" and np.array_equal(again, expected)
    assert np.array_equal(embed(fresh(weights, folder), crop(6))[0], other)


def unpack_ok(path: Path, weights: Path, pixels: np.ndarray) -> bool:
    key = f"fake:{file_digest(weights)}\n{KNOBS}\n{crop_digest(pixels)}"
    return path.stem == entry_name(key)


def test_garbage_files_in_the_folder_are_left_alone(weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    (folder / "v1" / "zz").mkdir(parents=True)
    (folder / "v1" / "zz" / "notes.txt").write_text("not ours")
    (folder / "v1" / "stray.bin").write_bytes(b"\x00" * 100)
    (folder / "README").write_text("hello")
    expected, _ = embed(fresh(weights, folder), crop(2))
    found, source = embed(fresh(weights, folder), crop(2))
    assert source == "disk" and np.array_equal(found, expected)
    assert (folder / "v1" / "zz" / "notes.txt").read_text() == "not ours"


def test_size_is_bounded_least_recently_used_first(weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    entry_bytes = len(pack("k", np.zeros((4, 8), np.float32)))
    cache = fresh(weights, folder, max_bytes=entry_bytes * 3)
    for value in range(3):
        embed(cache, crop(value))
        _age(entries(folder), 10)  # entries written earlier look older
    fresh(weights, folder, max_bytes=entry_bytes * 3).lookup(crop_digest(crop(0)), KNOBS)  # a hit refreshes crop 0
    embed(cache, crop(3))  # over the bound: evicts down to 90% of it
    reader = fresh(weights, folder, max_bytes=entry_bytes * 3)
    present = {value for value in range(4) if reader.lookup(crop_digest(crop(value)), KNOBS)[0] is not None}
    assert sum(p.stat().st_size for p in entries(folder)) <= entry_bytes * 3
    assert 0 in present and 3 in present and 1 not in present


def _age(paths: list[Path], seconds: float) -> None:
    import os

    for path in paths:
        stat = path.stat()
        os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))


def test_an_uncreatable_folder_falls_back_to_no_cache(
    weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="lfm_edge.vision.store"):
        cache = fresh(weights, blocker / "cache")
    assert any("cannot be created" in record.message for record in caplog.records)
    expected = CountingEncoder(weights).encode(crop(9))
    assert np.array_equal(embed(cache, crop(9))[0], expected)
    assert embed(fresh(weights, blocker / "cache"), crop(9))[1] == "encoder"


def test_a_read_only_disk_serves_existing_entries_and_writes_nothing(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "cache"
    expected, _ = embed(fresh(weights, folder), crop(1))
    before = entries(folder)

    def read_only(*_: object, **__: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store_module.tempfile, "mkstemp", read_only)
    with caplog.at_level(logging.WARNING, logger="lfm_edge.vision.store"):
        cache = fresh(weights, folder)
    assert any("not writable" in record.message for record in caplog.records)
    found, source = embed(cache, crop(1))
    assert source == "disk" and np.array_equal(found, expected)
    assert embed(cache, crop(2))[1] == "encoder" and entries(folder) == before


def test_a_full_disk_stops_writing_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A real write failure: the file size limit (RLIMIT_FSIZE) makes the kernel refuse the entry's bytes."""
    script = textwrap.dedent(f"""
        import logging, resource, sys
        from pathlib import Path
        import numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from tests.test_image_cache import CountingEncoder, crop, embed, fresh
        logging.basicConfig(level=logging.WARNING)
        weights = Path({str(tmp_path)!r}) / "w.gguf"
        weights.write_bytes(b"abcd" * 64)
        cache = fresh(weights, Path({str(tmp_path)!r}) / "cache")
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
        for value in range(3):
            found, source = embed(cache, crop(value))
            assert source == "encoder", source
            assert np.array_equal(found, CountingEncoder(weights).encode(crop(value)))
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "cannot write" in done.stderr and done.stderr.count("cannot write") == 1
    assert list((tmp_path / "cache").rglob("*.tmp")) == [] and list((tmp_path / "cache").rglob("*.emb")) == []


def test_two_processes_share_one_folder(tmp_path: Path) -> None:
    """Both read and write the same keys at once, with a bound small enough that they evict each other's entries;
    every embedding either reads must be the right one."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from tests.test_image_cache import CountingEncoder, crop, embed, fresh
        weights = Path({str(tmp_path)!r}) / "w.gguf"
        truth = CountingEncoder(weights)
        hits = 0
        for round in range(40):
            cache = fresh(weights, Path({str(tmp_path)!r}) / "cache", max_bytes=2000)
            for value in range(8):
                found, source = embed(cache, crop(value))
                assert np.array_equal(found, truth.encode(crop(value))), (round, value, source)
                hits += source == "disk"
        print(hits)
    """)
    (tmp_path / "w.gguf").write_bytes(b"wxyz" * 64)
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sum(int(out.strip()) for out, _ in outputs) > 0  # they did share entries


def test_entry_format_round_trips_exactly() -> None:
    values = np.random.default_rng(1).standard_normal((256, 1024)).astype(np.float32)
    found = unpack("key", pack("key", values))
    assert isinstance(found, np.ndarray) and np.array_equal(found, values) and found.dtype == np.float32
    assert unpack("other key", pack("key", values)) == "holds another key"


def test_stale_temporary_files_are_swept(weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    store = DiskStore(folder, max_bytes=1)
    stale = folder / "v1" / "ab" / ".abandoned.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    _age([stale], 7200)
    fresh_temp = Path(tempfile.mkstemp(prefix=".live.", suffix=".tmp", dir=stale.parent)[1])
    store.evict()
    assert not stale.exists() and fresh_temp.exists()
