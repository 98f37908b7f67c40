"""Image URLs of a request -> encoded image bytes, checked before any pixel is decoded; never a file path.

Accepted: `data:image/...;base64,...` URIs, and http(s) URLs only when the server runs with --allow-remote-images
(fetch.py: public addresses only, a timeout and a size cap). Anything else, a file path or file:// URL included, is
refused: a request must not make the server read its own disk.

Formats: an allow-list, recognised by their first bytes, never by what the request claims:
- PNG: lossless, what screenshots and diagrams are; its size is in the first chunk (APNG: the first frame only);
- JPEG: what cameras and phones write; size in the frame header, and its scans are counted (a progressive JPEG
  has about 10; each scan is a pass over every pixel, so one scan repeated 20,000 times is a decoding bomb);
- WebP: what browsers and Android save from the web; size in its header (animated: the first frame only);
- GIF: still common for stickers and web images; the first frame only, each frame's extent checked.
Everything else is refused, in particular containers of several images whose directory need not match what they
hold (ICO, ICNS, TIFF, MPO's extra frames, PSD), where Pillow decodes a frame to learn its size.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image

from lfm_edge.errors import RequestError
from lfm_edge.server.fetch import fetch_image
from lfm_edge.server.options import Limits

FORMATS = ("PNG", "JPEG", "WEBP", "GIF")


@dataclass(frozen=True)
class CheckedImage:
    """Encoded bytes whose format, size and complexity passed the checks; `param` names it in errors."""

    data: bytes
    format: str
    width: int
    height: int
    param: str

    @property
    def decoded_bytes(self) -> int:
        return self.width * self.height * 3


@dataclass(frozen=True)
class ImageSources:
    limits: Limits
    allow_remote: bool = False
    allow_private: bool = False


def image_bytes(url: str, sources: ImageSources, param: str) -> CheckedImage:
    limits = sources.limits
    scheme = urlsplit(url).scheme.lower() if ":" in url else ""
    if scheme == "data":
        data = _decode_data_uri(url, limits, param)
    elif scheme in ("http", "https"):
        if not sources.allow_remote:
            raise RequestError(
                "remote image URLs are off: send the image as a data: URI (base64), or start the server with "
                "--allow-remote-images",
                400,
                "remote_images_disabled",
                param,
            )
        data = fetch_image(url, limits.max_image_bytes, limits.remote_image_timeout_s, sources.allow_private, param)
    else:
        raise RequestError(
            f"image url {url[:40]!r} is neither a data: URI nor an http(s) URL; the server never reads files",
            400,
            "invalid_image_url",
            param,
        )
    return check_image(data, limits, param)


def _decode_data_uri(url: str, limits: Limits, param: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise RequestError(
            "a data: image URI must be base64, e.g. 'data:image/png;base64,iVBOR...'", 400, "invalid_image_url", param
        )
    payload = "".join(payload.split())
    if len(payload) * 3 // 4 > limits.max_image_bytes:
        raise RequestError(
            f"the image is over the limit of {limits.max_image_bytes} bytes", 413, "image_too_large", param
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"the data: URI is not valid base64 ({exc})", 400, "invalid_image_url", param) from None


def sniff_format(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_image(data: bytes, limits: Limits, param: str) -> CheckedImage:
    """Format, size and complexity from the headers; raises RequestError (400/413) before any pixel is decoded."""
    kind = sniff_format(data)
    if kind is None:
        raise RequestError(
            f"the image is not PNG, JPEG, WebP or GIF (first bytes {data[:8].hex()}); convert it to one of those",
            400,
            "unsupported_image_format",
            param,
        )
    try:
        frames = _complexity(kind, data, limits, param)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                width, height = image.size
                frames = max(frames, int(getattr(image, "n_frames", 1)) if kind != "GIF" else frames)
    except RequestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestError(f"the image is too large: {exc}", 413, "image_too_large", param) from None
    except (Exception, Warning) as exc:  # Pillow raises many kinds for broken headers
        raise RequestError(f"the image cannot be read: {exc}", 400, "invalid_image", param) from None
    if frames > limits.max_image_frames:
        raise RequestError(f"the image has {frames} frames, over the limit of {limits.max_image_frames}", 413,
                           "image_too_complex", param)  # fmt: skip
    if width * height > limits.max_image_pixels:
        raise RequestError(
            f"the image is {width}x{height} ({width * height} pixels), over the limit of {limits.max_image_pixels}",
            413,
            "image_too_large",
            param,
        )
    return CheckedImage(data, kind, width, height, param)


def _complexity(kind: str, data: bytes, limits: Limits, param: str) -> int:
    """Frames (GIF, WebP) counted, JPEG scans counted within their limits; raises RequestError over them."""
    if kind == "JPEG":
        scans = jpeg_scans(data, limits.max_jpeg_scans)
        if scans > limits.max_jpeg_scans:
            raise RequestError(f"the JPEG has more than {limits.max_jpeg_scans} scans (max_jpeg_scans); re-encode it",
                               413, "image_too_complex", param)  # fmt: skip
        return 1
    if kind == "GIF":
        frames, extent = gif_frames(data, limits.max_image_frames)
        if extent > limits.max_image_pixels:
            raise RequestError(f"a GIF frame covers {extent} pixels, over the limit of {limits.max_image_pixels}",
                               413, "image_too_large", param)  # fmt: skip
        return frames
    if kind == "WEBP":
        return webp_frames(data)
    return 1


def jpeg_scans(data: bytes, stop_after: int) -> int:
    """Start-of-scan markers in a JPEG, counted up to stop_after + 1 (entropy-coded data skipped)."""
    scans, pos = 0, 2
    while pos + 4 <= len(data) and scans <= stop_after:
        if data[pos] != 0xFF:
            pos = data.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker in (0x00, 0x01):
            pos += 1 if marker == 0xFF else 2
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
        if marker == 0xDA:
            scans += 1
            pos = _skip_entropy_coded(data, pos)
    return scans


def _skip_entropy_coded(data: bytes, pos: int) -> int:
    while (pos := data.find(b"\xff", pos)) >= 0 and pos + 1 < len(data):
        following = data[pos + 1]
        if following != 0x00 and not 0xD0 <= following <= 0xD7:
            return pos
        pos += 2
    return len(data)


def gif_frames(data: bytes, stop_after: int) -> tuple[int, int]:
    """(frames counted up to stop_after + 1, pixels of the logical screen or first frame's extent, the larger)."""
    width, height, flags = struct.unpack("<HHB", data[6:11])
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames, extent = 0, width * height
    while pos < len(data) and frames <= stop_after:
        block = data[pos]
        if block == 0x3B:
            break
        if block == 0x21:
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:
            left, top, frame_w, frame_h, local = struct.unpack("<HHHHB", data[pos + 1 : pos + 10])
            if frames == 0:
                extent = max(extent, (left + frame_w) * (top + frame_h))
            frames += 1
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            break
    return max(frames, 1), extent


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos]:
        pos += data[pos] + 1
    return pos + 1


def webp_frames(data: bytes) -> int:
    """ANMF chunks (frames of an animated WebP); 1 for a still one."""
    frames, pos = 0, 12
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        frames += fourcc == b"ANMF"
        pos += 8 + size + (size & 1)
    return max(frames, 1)
