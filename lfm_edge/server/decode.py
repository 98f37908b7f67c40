"""Checked images -> RGB arrays, decoded on a small pool of their own threads (never the model's), within budgets.

Memory: a request reserves the bytes its decoded images will hold (width x height x 3 each, known from the headers)
before any is decoded, and keeps them until its answer is over; all requests together stay within
max_decoded_image_mb (one that would go over waits its turn, within image_decode_timeout_s, then gets 503).
Time: a request's images must be decoded within image_decode_timeout_s (413 image_too_complex otherwise), and the
decoding stops, between two reads of the encoded data, once that time is up or the client has gone away.
The arrays are what the model then receives, so the model thread only resizes pixels already decoded.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from lfm_edge.errors import ImageError, RequestError
from lfm_edge.image import load_image
from lfm_edge.server.images import CheckedImage
from lfm_edge.server.options import Limits

_POLL_S = 0.05


class _Stopped(Exception):
    pass


class _StoppableReader(io.BytesIO):
    """Encoded bytes that refuse to be read further once `should_stop()`: Pillow reads in blocks, so a decode
    stops within one block of work."""

    def __init__(self, data: bytes, should_stop: Callable[[], bool]) -> None:
        super().__init__(data)
        self._should_stop = should_stop

    def read(self, size: int | None = -1) -> bytes:
        if self._should_stop():
            raise _Stopped
        return super().read(size)


class Reservation:
    def __init__(self, decoder: ImageDecoder, size: int) -> None:
        self._decoder = decoder
        self.size = size

    def release(self) -> None:
        """Idempotent; call it on the event loop once the arrays are no longer needed."""
        self._decoder.used -= self.size
        self.size = 0


class ImageDecoder:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.budget = limits.max_decoded_image_mb * 2**20
        self.used = 0  # only touched on the event loop
        self._pool = ThreadPoolExecutor(limits.image_decode_workers, thread_name_prefix="lfm-edge-image")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def reserve(self, size: int, cancelled: threading.Event) -> Reservation:
        if size > self.budget:
            raise RequestError(
                f"the request's images decode to {size // 2**20} MB, over the limit of "
                f"{self.limits.max_decoded_image_mb} MB (max_decoded_image_mb); send fewer or smaller images",
                413,
                "image_too_large",
                "messages",
            )
        give_up = time.monotonic() + self.limits.image_decode_timeout_s
        while self.used + size > self.budget:
            if time.monotonic() > give_up or cancelled.is_set():
                raise RequestError(
                    "the server is busy decoding other requests' images; retry in a moment",
                    503,
                    "server_busy",
                    headers={"Retry-After": str(self.limits.retry_after_s)},
                )
            await asyncio.sleep(_POLL_S)
        self.used += size
        return Reservation(self, size)

    async def decode_all(self, images: list[CheckedImage], cancelled: threading.Event) -> list[npt.NDArray[np.uint8]]:
        """The arrays of `images`, in order; raises RequestError when out of time, or when an image fails."""
        deadline = time.monotonic() + self.limits.image_decode_timeout_s
        stop = threading.Event()

        def should_stop() -> bool:
            return stop.is_set() or cancelled.is_set() or time.monotonic() > deadline

        futures = [asyncio.wrap_future(self._pool.submit(_decode, image, should_stop)) for image in images]
        try:
            done = await asyncio.wait_for(asyncio.gather(*futures), timeout=self.limits.image_decode_timeout_s)
        except TimeoutError:
            raise RequestError(
                f"the images were not decoded within {self.limits.image_decode_timeout_s:g} s "
                "(image_decode_timeout_s); send smaller or simpler images",
                413,
                "image_too_complex",
                images[0].param if len(images) == 1 else "messages",
            ) from None
        finally:
            stop.set()  # the others stop at their next read
        return list(done)


def _decode(image: CheckedImage, should_stop: Callable[[], bool]) -> npt.NDArray[np.uint8]:
    try:
        return load_image(_StoppableReader(image.data, should_stop), max_pixels=image.width * image.height)
    except ImageError as exc:
        if isinstance(exc.__cause__, _Stopped):
            raise RequestError("decoding the image was stopped", 413, "image_too_complex", image.param) from None
        raise RequestError(str(exc), 400, "invalid_image", image.param) from None


def checked_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The content parts of `messages` that still hold a CheckedImage (to be replaced by its array)."""
    return [part for message in messages if isinstance(message.get("content"), list)
            for part in message["content"] if isinstance(part.get("image"), CheckedImage)]  # fmt: skip
