"""Image URLs of a request -> encoded image bytes, within limits; never a file path.

Accepted: `data:image/...;base64,...` URIs, and http(s) URLs only when the server runs with --allow-remote-images
(fetched with a timeout, a size cap and redirects kept to http(s)). Anything else, a file path or file:// URL
included, is refused: a request must not make the server read its own disk. Each image is opened header-only to
check its size before it is queued, so an oversized or undecodable image never reaches the model.
"""

from __future__ import annotations

import base64
import binascii
import io
import urllib.error
import urllib.request
import warnings
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from lfm_edge import __version__
from lfm_edge.errors import RequestError
from lfm_edge.server.options import Limits


def image_bytes(url: str, limits: Limits, allow_remote: bool, param: str) -> bytes:
    scheme = urlsplit(url).scheme.lower() if ":" in url else ""
    if scheme == "data":
        data = _decode_data_uri(url, limits, param)
    elif scheme in ("http", "https"):
        if not allow_remote:
            raise RequestError(
                "remote image URLs are off: send the image as a data: URI (base64), or start the server with "
                "--allow-remote-images",
                400,
                "remote_images_disabled",
                param,
            )
        data = _fetch(url, limits, param)
    else:
        raise RequestError(
            f"image url {url[:40]!r} is neither a data: URI nor an http(s) URL; the server never reads files",
            400,
            "invalid_image_url",
            param,
        )
    check_image(data, limits, param)
    return data


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


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.URLError(f"redirect to a non-http(s) URL: {newurl[:60]!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, limits: Limits, param: str) -> bytes:
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": f"lfm-edge/{__version__}"})
    try:
        with opener.open(request, timeout=limits.remote_image_timeout_s) as response:
            data: bytes = response.read(limits.max_image_bytes + 1)
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts, bad URLs
        raise RequestError(f"could not fetch the image URL: {exc}", 400, "invalid_image_url", param) from None
    if len(data) > limits.max_image_bytes:
        raise RequestError(
            f"the image is over the limit of {limits.max_image_bytes} bytes", 413, "image_too_large", param
        )
    return data


def check_image(data: bytes, limits: Limits, param: str) -> tuple[int, int]:
    """(width, height) from the header; refuses undecodable data and images over max_image_pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, Warning) as exc:
        raise RequestError(f"the image cannot be read: {exc}", 400, "invalid_image", param) from None
    if width * height > limits.max_image_pixels:
        raise RequestError(
            f"the image is {width}x{height} ({width * height} pixels), over the limit of {limits.max_image_pixels}",
            413,
            "image_too_large",
            param,
        )
    return width, height
