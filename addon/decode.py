"""Incremental content decoding (gzip, deflate, br, zstd) for teed bodies.

The stream tee sees bytes exactly as the upstream sent them, still compressed
when the client asked for compression. We never strip the client's
`Accept-Encoding` (the client must get what the provider sent), so the writer
decodes the kept chunks here, piece by piece, off the event loop.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli
import zstandard

# A decoded body larger than this is cut, not held: a profiler needs the usage,
# not a 2 GB download.
MAX_DECODED = 256 * 1024 * 1024


class DecodeError(ValueError):
    pass


class _Deflate:
    """`deflate` is zlib-wrapped by the RFC but raw in some servers: try both."""

    def __init__(self) -> None:
        self._obj: zlib._Decompress | None = None
        self._first = b""

    def __call__(self, data: bytes) -> bytes:
        if self._obj is None:
            self._first += data
            if len(self._first) < 2:
                return b""
            wbits = (
                zlib.MAX_WBITS
                if (self._first[0] & 0x0F) == 8
                and (int.from_bytes(self._first[:2], "big") % 31 == 0)
                else -zlib.MAX_WBITS
            )
            self._obj = zlib.decompressobj(wbits)
            data, self._first = self._first, b""
        return self._obj.decompress(data)


def _identity(data: bytes) -> bytes:
    return data


def make_decoder(encoding: str | None) -> Callable[[bytes], bytes]:
    """A function fed successive pieces of a body, returning the decoded bytes so far.

    Raises DecodeError for an encoding we cannot decode; the callable itself
    raises DecodeError on corrupt data.
    """
    if not encoding:  # the usual case, twice a call: skip the parsing below
        return _identity
    codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return _identity
    if len(codings) > 1:
        raise DecodeError(f"stacked content encodings are not supported: {encoding}")
    coding = codings[0]
    if coding in ("gzip", "x-gzip"):
        fn: Callable[[bytes], bytes] = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    elif coding == "deflate":
        fn = _Deflate()
    elif coding == "br":
        fn = brotli.Decompressor().process
    elif coding == "zstd":
        fn = zstandard.ZstdDecompressor().decompressobj().decompress
    else:
        raise DecodeError(f"unknown content encoding: {encoding}")

    total = 0

    def decode(data: bytes) -> bytes:
        nonlocal total
        try:
            out = fn(data)
        except (zlib.error, brotli.error, zstandard.ZstdError) as e:
            raise DecodeError(f"corrupt {coding} body: {e}") from e
        total += len(out)
        if total > MAX_DECODED:
            raise DecodeError(f"decoded body larger than {MAX_DECODED} bytes")
        return out

    return decode


def decode_all(data: bytes, encoding: str | None) -> bytes:
    return make_decoder(encoding)(data)
