"""Token costs of attachments (images, documents, audio, video), never by tokenizing bytes.

Providers bill media by their own documented rules, which mostly need the image
size. A base64 payload tells us the size cheaply: we decode only its first few
kilobytes and read the PNG/GIF/WebP/JPEG header. A URL or file id does not, and
then we assume a 1024x1024 image and say so (`Cost.exact=False`).

Rules (provider docs, mid 2025):
- OpenAI, tile models: low detail = base; high/auto = base + tile * 512px tiles
  after fitting into 2048x2048 and scaling the short side down to 768.
- OpenAI, patch models (gpt-4.1-mini/nano, o4-mini, gpt-5-mini/nano): 32px patches,
  capped at 1536, times a per-model multiplier.
- Anthropic: w*h/750 after fitting the long edge into 1568px, at most ~1600.
- Gemini: 258 per image up to 384x384, else 258 per 768x768 tile; 258 per PDF page;
  32 tokens per second of audio, 263 per second of video.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

UNKNOWN_SIZE = (1024, 1024)  # assumed when the image bytes are not in the request
# (model prefix, kind, base or multiplier, tile); longest prefix first.
_OPENAI_IMAGE = (
    ("gpt-4o-mini", "tile", 2833, 5667),
    ("gpt-4.1-mini", "patch", 1.62, 0),
    ("gpt-4.1-nano", "patch", 2.46, 0),
    ("gpt-5-mini", "patch", 1.62, 0),
    ("gpt-5-nano", "patch", 2.46, 0),
    ("o4-mini", "patch", 1.72, 0),
    ("computer-use", "tile", 65, 129),
    ("gpt-5", "tile", 70, 140),
    ("o1", "tile", 75, 150),
    ("o3", "tile", 75, 150),
)
# Per-page and per-second figures where the provider documents none are rough
# (Anthropic says a PDF page is 1,500-3,000 tokens: text plus a page image).
PDF_PAGE = {"anthropic": 2250, "gemini": 258, "openai": 1500}
AUDIO_PER_SECOND = {"gemini": 32, "openai": 10}  # OpenAI: 1 token per 100 ms of user audio
VIDEO_PER_SECOND = 263
AUDIO_BYTES_PER_SECOND = 16_000  # 128 kbit/s, when the container does not say
UNKNOWN_SECONDS = 60
UNKNOWN_PAGES = 3
_URLSAFE = str.maketrans("-_", "+/")


class Cost(NamedTuple):
    tokens: int
    exact: bool  # False when a size, duration or page count was assumed


def family(provider: str | None, api: str) -> str:
    """Which provider's media rules apply: by API shape, the wire decides."""
    return {"messages": "anthropic", "gemini": "gemini"}.get(api, "openai")


def split_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,XXXX` -> ("image/png", "XXXX"); None for other URLs."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url.partition(",")
    if not sep:
        return None
    return head[5:].split(";", 1)[0].lower(), data


def _b64decode(chunk: str) -> bytes:
    if "-" in chunk or "_" in chunk:  # the URL-safe alphabet (accepted by Gemini)
        chunk = chunk.translate(_URLSAFE)
    try:
        return base64.b64decode(chunk + "=" * (-len(chunk) % 4))
    except (binascii.Error, ValueError):
        return b""


def _b64_prefix(data: str, nbytes: int) -> bytes:
    return _b64decode(data[: (nbytes * 4 // 3) // 4 * 4])


_memo_data: dict[tuple, Any] = {}


def _memo(key: tuple, compute: Callable[[], Any]) -> Any:
    """Memoize a payload's decoded facts by (length, head, tail).

    A long agent run resends the same image or PDF on every call; keying on a few
    bytes instead of the payload avoids hashing megabytes each time.
    """
    try:
        return _memo_data[key]
    except KeyError:
        pass
    value = compute()
    if len(_memo_data) >= 4096:  # crude bound; a clear is cheap and rare
        _memo_data.clear()
    _memo_data[key] = value
    return value


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            i += 1
            continue
        marker = b[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", b[i + 5 : i + 9])
            return w, h
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        i += 2 + struct.unpack(">H", b[i + 2 : i + 4])[0]
    return None


def _sniff_size(data: str) -> tuple[int, int] | None:
    b = _b64_prefix(data, 96_000)  # JPEG EXIF blocks can push the size 64 kB in
    if b.startswith(b"\x89PNG\r\n\x1a\n") and len(b) >= 24:
        return struct.unpack(">II", b[16:24])
    if b[:4] == b"GIF8" and len(b) >= 10:
        return struct.unpack("<HH", b[6:10])
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP" and len(b) >= 30:
        kind = b[12:16]
        if kind == b"VP8 ":
            w, h = struct.unpack("<HH", b[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if kind == b"VP8L":
            v = int.from_bytes(b[21:25], "little")
            return (v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1
        if kind == b"VP8X":
            return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    if b[:2] == b"\xff\xd8":
        try:
            return _jpeg_size(b)
        except struct.error:
            return None
    return None


def image_size(data: str) -> tuple[int, int] | None:
    """(width, height) from a base64 image's header, or None when it cannot be read."""
    if not isinstance(data, str) or not data:
        return None
    size = _memo(("img", len(data), data[:64], data[-64:]), lambda: _sniff_size(data))
    return size if size and size[0] > 0 and size[1] > 0 else None


def _openai_image(model: str, w: int, h: int, detail: str) -> int:
    m = (model or "").lower().rsplit("/", 1)[-1]
    kind, base, tile = "tile", 85, 170
    for prefix, k, b, t in _OPENAI_IMAGE:
        if m.startswith(prefix):
            kind, base, tile = k, b, t
            break
    if kind == "patch":
        patches = math.ceil(w / 32) * math.ceil(h / 32)
        return math.ceil(min(patches, 1536) * base)
    if detail == "low":
        return int(base)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    return int(base + tile * math.ceil(w / 512) * math.ceil(h / 512))


def image_cost(
    fam: str, model: str | None, data: str | None = None, detail: str | None = None
) -> Cost:
    """Tokens for one image; `data` is its base64 payload when the request carries it."""
    size = image_size(data) if data else None
    w, h = size or UNKNOWN_SIZE
    if fam == "anthropic":
        if max(w, h) > 1568:
            s = 1568 / max(w, h)
            w, h = w * s, h * s
        return Cost(min(math.ceil(w * h / 750), 1600), size is not None)
    if fam == "gemini":
        if max(w, h) > 3072:  # Gemini downscales big images; keep the tile count sane
            s = 3072 / max(w, h)
            w, h = w * s, h * s
        if w <= 384 and h <= 384:
            return Cost(258, size is not None)
        return Cost(258 * math.ceil(w / 768) * math.ceil(h / 768), size is not None)
    low = (detail or "").lower() == "low"
    return Cost(_openai_image(model or "", w, h, "low" if low else "high"), size is not None or low)


# The page tree root's /Count, in either key order (outlines have a /Count too).
_PAGES_COUNT = re.compile(
    rb"/Type\s*/Pages\b[^>]{0,300}?/Count\s+(\d+)|/Count\s+(\d+)[^>]{0,300}?/Type\s*/Pages\b"
)
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def _pdf_pages(data: str) -> int | None:
    raw = _b64decode(data)
    counts = [int(m.group(1) or m.group(2)) for m in _PAGES_COUNT.finditer(raw)]
    return max(counts) if counts else (len(_PAGE.findall(raw)) or None)


def document_cost(fam: str, mime: str | None, data: str | None) -> Cost:
    """Tokens for a non-text document (PDF and the like), from its page count when readable."""
    pages = None
    if isinstance(data, str) and data and isinstance(mime, str) and mime.endswith("pdf"):
        pages = _memo(("pdf", len(data), data[:64], data[-64:]), lambda: _pdf_pages(data))
    return Cost(PDF_PAGE.get(fam, 1500) * (pages or UNKNOWN_PAGES), pages is not None)


def _wav_seconds(data: str) -> float | None:
    b = _b64_prefix(data, 64)
    if b[:4] != b"RIFF" or b[8:12] != b"WAVE" or len(b) < 32:
        return None
    byte_rate = struct.unpack("<I", b[28:32])[0]
    return (len(data) * 3 / 4 - 44) / byte_rate if byte_rate else None


def audio_cost(fam: str, data: str | None, fmt: str | None = None) -> Cost:
    """Tokens for an audio clip: duration from a WAV header, else from its byte size."""
    seconds = _wav_seconds(data) if data else None
    exact = seconds is not None
    if seconds is None:
        seconds = len(data) * 3 / 4 / AUDIO_BYTES_PER_SECOND if data else UNKNOWN_SECONDS
    return Cost(math.ceil(max(seconds, 0) * AUDIO_PER_SECOND.get(fam, 10)), exact)


def video_cost(data: str | None) -> Cost:
    """Tokens for a video (Gemini's 263/s); its length is never known here."""
    return Cost(VIDEO_PER_SECOND * UNKNOWN_SECONDS, False)


def media_cost(fam: str, model: str | None, mime: str | None, data: str | None) -> tuple[str, Cost]:
    """(kind, cost) for a payload described only by its MIME type (Gemini parts, files)."""
    mime = mime.lower() if isinstance(mime, str) else ""
    if mime.startswith("image/"):
        return "image", image_cost(fam, model, data)
    if mime.startswith("audio/"):
        return "audio", audio_cost(fam, data)
    if mime.startswith("video/"):
        return "video", video_cost(data)
    return "document", document_cost(fam, mime or "application/pdf", data)
