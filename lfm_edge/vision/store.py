"""The persistent tier of the image caches: one checksummed file per crop embedding (`.emb`) and per text-model
state after an image (`.state`, lfm_edge.vision.prefix_state), in a folder any number of processes may share.

Layout: `<dir>/v1/<k[:2]>/<k>.emb`, k = sha256 of the entry's key (encoder identity, crop digest, knobs). A file is
magic, rows, columns, the key's sha256, the float32 rows, then the sha256 of everything before it (a `.state` file:
magic, payload length, the key's sha256, llama.cpp's sequence state bytes, sha256). A read checks all of it: a
truncated file, flipped bytes, or a file holding another key (copied or renamed) is logged, deleted and treated as
a miss, so the crop is encoded (the prompt evaluated) again and the entry rewritten; it never reaches the model.

Writes go to a temporary file in the same folder, renamed over the entry when complete (atomic on POSIX and
Windows), so a reader in another process sees the old entry, the new one, or none. There is no fsync: after a power
loss a renamed file may be empty or short, which the checksum catches. Size is bounded: when the folder grows past
`max_bytes`, the least recently used entries of both kinds (a hit refreshes the file's mtime) are deleted down to
90% of it.

Failures never stop a request: a folder that cannot be created or written leaves the cache read-only or off, a
full disk turns writing off for this process, each logged once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_MAGIC = b"LFMEMB01"
_HEADER = struct.Struct("<8sII32s")  # magic, rows, columns, sha256 of the key
_DIGEST = 32
_SUFFIX = ".emb"
_STATE_MAGIC = b"LFMSTA01"
_STATE_HEADER = struct.Struct("<8sQ32s")  # magic, payload bytes, sha256 of the key
STATE_SUFFIX = ".state"
_SUFFIXES = (_SUFFIX, STATE_SUFFIX)
_STALE_TEMP_S = 3600.0  # a temporary file this old was left by a writer that died
DEFAULT_MAX_BYTES = 1 << 30


def entry_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def pack(key: str, embeddings: np.ndarray) -> bytes:
    rows, columns = embeddings.shape
    body = _HEADER.pack(_MAGIC, rows, columns, hashlib.sha256(key.encode()).digest())
    body += np.ascontiguousarray(embeddings, dtype="<f4").tobytes()
    return body + hashlib.sha256(body).digest()


def unpack(key: str, data: bytes) -> np.ndarray | str:
    """The embeddings, or why the bytes are not a valid entry for `key`."""
    if len(data) < _HEADER.size + _DIGEST:
        return "truncated"
    magic, rows, columns, key_digest = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        return "not an embedding entry"
    if len(data) != _HEADER.size + 4 * rows * columns + _DIGEST:
        return "truncated or padded"
    if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
        return "checksum mismatch"
    if key_digest != hashlib.sha256(key.encode()).digest():
        return "holds another key"
    values = np.frombuffer(bytearray(data[_HEADER.size : -_DIGEST]), dtype="<f4")
    return values.astype(np.float32, copy=False).reshape(rows, columns)


def pack_state(key: str, state: bytes) -> bytes:
    body = _STATE_HEADER.pack(_STATE_MAGIC, len(state), hashlib.sha256(key.encode()).digest()) + state
    return body + hashlib.sha256(body).digest()


def unpack_state(key: str, data: bytes) -> bytes | ValueError:
    """The state bytes, or (as a ValueError, not raised) why `data` is not a valid state entry for `key`."""
    if len(data) < _STATE_HEADER.size + _DIGEST:
        return ValueError("truncated")
    magic, size, key_digest = _STATE_HEADER.unpack_from(data)
    if magic != _STATE_MAGIC:
        return ValueError("not a state entry")
    if len(data) != _STATE_HEADER.size + size + _DIGEST:
        return ValueError("truncated or padded")
    if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
        return ValueError("checksum mismatch")
    if key_digest != hashlib.sha256(key.encode()).digest():
        return ValueError("holds another key")
    return data[_STATE_HEADER.size : -_DIGEST]


class DiskStore:
    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(folder).expanduser() / "v1"
        self.max_bytes = max_bytes
        self.readable = True
        self.writable = True
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.writable = False
            self.readable = self.root.is_dir()
            log.warning("image cache %s cannot be created (%s): %s", folder, exc.strerror or exc, self._mode())
        if self.writable and not _can_write(self.root):
            self.writable = False
            log.warning("image cache %s is not writable: %s", folder, self._mode())
        self._size = self._scan_size() if self.readable else 0

    def _mode(self) -> str:
        return "reading existing entries only" if self.readable else "running without a persistent cache"

    def _path(self, key: str, suffix: str = _SUFFIX) -> Path:
        name = entry_name(key)
        return self.root / name[:2] / f"{name}{suffix}"

    def get(self, key: str) -> np.ndarray | None:
        found = self._read(self._path(key), "the crop is encoded again")
        if found is None:
            return None
        values = unpack(key, found)
        if isinstance(values, str):
            self._invalid(self._path(key), values, "the crop is encoded again")
            return None
        return values

    def get_state(self, key: str) -> bytes | None:
        """A text-model state entry (lfm_edge.vision.prefix_state), checked like an embedding entry."""
        path = self._path(key, STATE_SUFFIX)
        found = self._read(path, "the prompt is evaluated")
        if found is None:
            return None
        state = unpack_state(key, found)
        if isinstance(state, ValueError):
            self._invalid(path, str(state), "the prompt is evaluated")
            return None
        return state

    def discard_state(self, key: str, why: str) -> None:
        """Drops a state entry that passed its checksum but that llama.cpp refused (logged)."""
        self._invalid(self._path(key, STATE_SUFFIX), why, "the prompt is evaluated")

    def _read(self, path: Path, fallback: str) -> bytes | None:
        if not self.readable:
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("image cache entry %s cannot be read (%s): %s", path.name, exc, fallback)
            return None
        self._touch(path)
        return data

    def _invalid(self, path: Path, why: str, fallback: str) -> None:
        log.warning("image cache entry %s is invalid (%s): ignored, %s", path.name, why, fallback)
        self._discard(path)

    def put(self, key: str, embeddings: np.ndarray) -> None:
        self._write(self._path(key), pack(key, embeddings))

    def put_state(self, key: str, state: bytes) -> None:
        self._write(self._path(key, STATE_SUFFIX), pack_state(key, state))

    def _write(self, path: Path, data: bytes) -> None:
        if not self.writable:
            return
        try:
            path.parent.mkdir(exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            self.writable = False
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            log.warning("image cache %s: cannot write (%s): %s from now on", self.root.parent,
                        "disk full" if full else exc.strerror or exc, self._mode())  # fmt: skip
            return
        self._size += len(data)
        if self._size > self.max_bytes:
            self.evict()

    def evict(self) -> None:
        """Deletes least recently used entries until the folder holds at most 90% of max_bytes (other processes
        may delete the same files at the same time: a file already gone is skipped)."""
        entries = []
        now = time.time()
        for path in self.root.glob("*/*"):
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.suffix in _SUFFIXES:
                entries.append((stat.st_mtime, stat.st_size, path))
            elif path.name.startswith(".") and path.suffix == ".tmp" and now - stat.st_mtime > _STALE_TEMP_S:
                self._discard(path)
        entries.sort()
        total = sum(size for _, size, _ in entries)
        target = int(self.max_bytes * 0.9)
        for _, size, path in entries:
            if total <= target:
                break
            self._discard(path)
            total -= size
        self._size = total

    def _scan_size(self) -> int:
        total = 0
        for path in self.root.glob("*/*"):
            if path.suffix not in _SUFFIXES:
                continue
            try:
                total += path.stat().st_size
            except OSError:
                continue
        return total

    def _touch(self, path: Path) -> None:
        if self.writable:
            # Evicted by another process meanwhile, or the disk turned read-only: recency is only a hint.
            with contextlib.suppress(OSError):
                os.utime(path)

    def _discard(self, path: Path) -> None:
        if self.writable:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _can_write(folder: Path) -> bool:
    """Whether a file can be created in `folder` (access() says yes for root on a read-only mount; this does not)."""
    try:
        handle, name = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=folder)
    except OSError:
        return False
    os.close(handle)
    Path(name).unlink(missing_ok=True)
    return True
