"""llmprof end to end: a real `mitmdump -s addon/llmprof.py`, real clients through
HTTPS_PROXY, the fake upstream's real wire formats, and the store read back — on
SQLite and on PostgreSQL.

Every call carries a unique `x-llmprof-session`, so each record can be matched to
the call that made it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

import storage
from addon.analysis import pricing
from api.app import create_app
from tests.support.clients import (
    API_KEY,
    FAKE_HEADERS,
    SDK_HTTPX,
    URLS,
    auth_headers,
    curl_post,
    make_request,
    run_curl,
    sse_events,
)
from tests.support.fake_upstream import expected_usage

ADDON = Path(__file__).resolve().parents[2] / "addon" / "llmprof.py"
SECRETS = ["sk-e2eSECRETheader0001", "e2eSECRETquery0002", "e2eSECRETcookie0003"]


def start_proxy(proxy_factory, db_url, tmp_path):
    return proxy_factory(
        [ADDON],
        env={"LLMPROF_HOME": str(tmp_path / "home"), "LLMPROF_DB_URL": db_url},
        extra_args=["--set", "llmprof_flush_ms=50"],
    )


def normalized(provider: str, usage: dict) -> dict:
    """The fake upstream's usage in llmprof's convention (computed here, independently)."""
    if provider == "openai":
        return {
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
            "cache_write_tokens": None,
            "reasoning_tokens": usage["completion_tokens_details"]["reasoning_tokens"],
        }
    return {
        "prompt_tokens": usage["input_tokens"]
        + usage["cache_read_input_tokens"]
        + usage["cache_creation_input_tokens"],
        "completion_tokens": usage["output_tokens"],
        "cached_tokens": usage["cache_read_input_tokens"],
        "cache_write_tokens": usage["cache_creation_input_tokens"],
        "reasoning_tokens": None,
    }


async def read_back(db_url: str) -> tuple[dict[str, dict], list[dict]]:
    async with storage.make_store(db_url, readonly=True) as s:
        items = await s.recent(limit=500)
        full = {}
        for item in items:
            full[item["session_id"]] = await s.get(item["id"])
    return full, items


def call_curl(proxy, provider, stream, sid, tmp_path, extra=None, query=""):
    request = make_request(provider, stream)
    headers = {**auth_headers(provider), **FAKE_HEADERS[provider], **(extra or {})}
    headers["x-llmprof-session"] = sid
    args = curl_post(URLS[provider] + query, request, headers)
    rc, status, body = run_curl(
        ["--cacert", str(proxy.ca_cert), *args],
        tmp_path / f"{sid}.out",
        env=proxy.env_for_clients(),
    )
    return request, headers, rc, status, body


def test_every_client_and_shape_is_recorded_exactly(
    db_url, proxy_factory, upstream, tmp_path, monkeypatch
):
    proxy = start_proxy(proxy_factory, db_url, tmp_path)
    for key, value in proxy.env_for_clients(base={}).items():
        monkeypatch.setenv(key, value)
    expected: dict[str, tuple[str, bool, dict, dict]] = {}

    # curl: bytes through the proxy equal a direct call, for all four shapes
    for provider in ("openai", "anthropic"):
        for stream in (False, True):
            sid = f"curl-{provider}-{stream}"
            request, headers, rc, status, body = call_curl(
                proxy, provider, stream, sid, tmp_path, extra={"x-fake-split": "1"}
            )
            host = URLS[provider].split("/")[2]
            direct = run_curl(
                [*upstream.curl_direct_args(host), *curl_post(URLS[provider], request, headers)],
                tmp_path / f"{sid}.direct",
            )
            assert (rc, status) == (0, 200) and direct == (0, 200, body)
            expected[sid] = (provider, stream, request, headers)

    # httpx with gzip (its default Accept-Encoding): decoded by llmprof off the hot path
    for provider in ("openai", "anthropic"):
        sid = f"httpx-{provider}"
        request = make_request(provider, True)
        headers = {**auth_headers(provider), **FAKE_HEADERS[provider], "x-llmprof-session": sid}
        with httpx.Client() as client:
            with client.stream("POST", URLS[provider], json=request, headers=headers) as r:
                assert r.headers["content-encoding"] == "gzip"
                raw = r.read()
        assert sse_events(raw)
        expected[sid] = (provider, True, request, headers)

    # the official SDKs, streamed and not
    for stream in (False, True):
        sid = f"openai-sdk-{stream}"
        request = make_request("openai", stream)
        fake = {**FAKE_HEADERS["openai"], "x-llmprof-session": sid}
        with openai.OpenAI(api_key=API_KEY, max_retries=0) as client:
            out = client.chat.completions.create(**request, extra_headers=fake)
            if stream:
                out = list(out)
                assert (
                    out[-1].usage.prompt_tokens
                    == expected_usage("openai", request, fake)["prompt_tokens"]
                )
        expected[sid] = ("openai", stream, request, fake)
        sid = f"anthropic-sdk-{stream}"
        request = make_request("anthropic", stream)
        fake = {**FAKE_HEADERS["anthropic"], "x-llmprof-session": sid}
        with anthropic.Anthropic(api_key=API_KEY, max_retries=0) as client:
            out = client.messages.create(**request, extra_headers=fake)
            if stream:
                out = list(out)
        expected[sid] = ("anthropic", stream, request, fake)

    assert proxy.stop() == 0  # SIGINT: the writer drains before exit
    records, items = asyncio.run(read_back(db_url))
    assert set(records) == set(expected)
    for sid, (provider, stream, request, headers) in expected.items():
        rec = records[sid]
        usage = expected_usage(provider, request, headers)
        want = normalized(provider, usage)
        got = {k: rec[k] for k in want}
        assert got == want, sid
        assert rec["total_tokens"] == want["prompt_tokens"] + want["completion_tokens"]
        assert rec["usage_source"] == "provider" and rec["usage_raw"] == usage, sid
        assert (rec["provider"], rec["outcome"], rec["status"], rec["streamed"]) == (
            provider,
            "ok",
            200,
            stream,
        ), sid
        assert rec["requested_model"] == request["model"] and rec["request"] == request
        assert rec["model"] == (rec["response"] or {}).get("model") and rec["model"]
        assert rec["endpoint"] == URLS[provider].split(".com", 1)[1]
        assert rec["latency_ms"] > 0 and rec["turn"] == 1
        if stream:
            assert 0 < rec["ttft_ms"] <= rec["latency_ms"], sid
        else:
            assert rec["ttft_ms"] is None
        assert "authorization" not in json.dumps(rec["request_headers"]).lower()
        # priced from the usage the provider reported, by the offline price library
        price = pricing.price(provider, rec["model"], ts=rec["ts"], **want)
        assert price.priced and rec["cost_usd"] == pytest.approx(price.cost_usd, rel=1e-9)
        assert rec["price_source"].startswith("genai-prices ")

    # the API serves exactly what the store holds
    async def via_api():
        app = create_app(db_url=db_url)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                health = (await c.get("/api/health")).json()
                listed = (await c.get("/api/traces?limit=500")).json()
                one = (await c.get(f"/api/traces/{listed[0]['id']}")).json()
        return health, listed, one

    health, listed, one = asyncio.run(via_api())
    assert health["traces"] == len(expected) and health["ok"] is True
    assert listed == items
    assert one == records[one["session_id"]]


def test_failures_keep_what_was_seen(db_url, proxy_factory, upstream, tmp_path):
    proxy = start_proxy(proxy_factory, db_url, tmp_path)
    _, _, rc, status, body = call_curl(
        proxy, "openai", False, "rate-limited", tmp_path, extra={"x-fake-status": "429"}
    )
    assert status == 429 and json.loads(body)["error"]["type"]
    _, _, rc, _, _ = call_curl(
        proxy,
        "anthropic",
        True,
        "cut",
        tmp_path,
        extra={"x-fake-abort-after": "3", "x-fake-gzip": "0"},
    )
    assert rc in (18, 92)  # curl: transfer closed early (HTTP/1.1) / stream not closed (h2)
    request, headers, rc, _, _ = call_curl(
        proxy,
        "anthropic",
        True,
        "stream-error",
        tmp_path,
        extra={"x-fake-stream-error-after": "3"},
    )
    # the client hangs up while the upstream is still streaming
    args = curl_post(
        URLS["openai"],
        make_request("openai", True),
        {**auth_headers("openai"), "x-fake-delay-ms": "400", "x-llmprof-session": "gone"},
    )
    subprocess.run(
        ["curl", "-sS", "-N", "--max-time", "1", "--cacert", str(proxy.ca_cert), *args],
        capture_output=True,
        env=proxy.env_for_clients(),
        timeout=30,
    )
    time.sleep(0.5)
    assert proxy.stop() == 0
    records, _ = asyncio.run(read_back(db_url))

    limited = records["rate-limited"]
    assert (limited["outcome"], limited["status"], limited["prompt_tokens"]) == (
        "http_error",
        429,
        None,
    )
    assert limited["error"] == "rate_limit_exceeded: Rate limit reached (fake upstream)."

    cut = records["cut"]
    assert cut["outcome"] == "upstream_error" and "peer closed" in cut["error"]
    usage = expected_usage("anthropic", make_request("anthropic", True), FAKE_HEADERS["anthropic"])
    assert cut["prompt_tokens"] == normalized("anthropic", usage)["prompt_tokens"]
    assert cut["completion_tokens"] == 1  # only message_start's count arrived

    errored = records["stream-error"]
    assert errored["outcome"] == "ok" and errored["error"].startswith("overloaded_error")

    gone = records["gone"]
    assert gone["outcome"] == "client_abort" and gone["streamed"] is True, gone["error"]


def test_streams_are_not_buffered_and_ttft_is_measured(db_url, proxy_factory, upstream, tmp_path):
    proxy = start_proxy(proxy_factory, db_url, tmp_path)
    request = make_request("anthropic", True)
    headers = {
        **auth_headers("anthropic"),
        "x-fake-ttft-ms": "300",
        "x-fake-delay-ms": "150",
        "x-fake-words": "3",
        "x-llmprof-session": "paced",
    }
    arrivals = []
    t0 = time.monotonic()
    ctx = ssl.create_default_context(cafile=str(proxy.ca_cert))
    with httpx.Client(proxy=proxy.proxy_url, verify=ctx) as client:
        with client.stream("POST", URLS["anthropic"], json=request, headers=headers) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    arrivals.append(time.monotonic() - t0)
    assert len(arrivals) >= 8
    assert arrivals[-1] - arrivals[0] >= 0.75 * 0.15 * (len(arrivals) - 1)  # paced, not batched
    assert proxy.stop() == 0
    rec = asyncio.run(read_back(db_url))[0]["paced"]
    # the first content event comes after the 300 ms pause and 3 more events at 150 ms
    assert 300 + 3 * 150 * 0.75 <= rec["ttft_ms"] < rec["latency_ms"]
    assert rec["completion_tokens"] == 3


def test_other_hosts_are_not_intercepted_and_nothing_secret_is_kept(
    db_url, proxy_factory, upstream, tmp_path
):
    proxy = start_proxy(proxy_factory, db_url, tmp_path)
    # A non-LLM host: its TLS passes through, so the upstream's own certificate is what the
    # client sees (trusting only the upstream's CA works, trusting only mitmproxy's fails).
    url = f"https://localhost:{upstream.port}/v1/models"
    ok = subprocess.run(
        ["curl", "-sS", "--cacert", str(upstream.ca_cert), url],
        capture_output=True,
        env=proxy.env_for_clients(),
        timeout=30,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["object"] == "list"
    bad = subprocess.run(
        ["curl", "-sS", "--cacert", str(proxy.ca_cert), url],
        capture_output=True,
        env=proxy.env_for_clients(),
        timeout=30,
    )
    assert bad.returncode == 60  # certificate problem: mitmproxy did not forge one

    # Credentials in every place a client may put them.
    secret_headers = {
        "authorization": f"Bearer {SECRETS[0]}",
        "x-api-key": SECRETS[0],
        "api-key": SECRETS[0],
        "x-goog-api-key": SECRETS[0],
        "cookie": f"session={SECRETS[2]}",
        "proxy-authorization": f"Basic {SECRETS[0]}",
    }
    for provider in ("openai", "anthropic"):
        for stream in (False, True):
            _, _, rc, status, _ = call_curl(
                proxy,
                provider,
                stream,
                f"secret-{provider}-{stream}",
                tmp_path,
                extra=secret_headers,
                query=f"?key={SECRETS[1]}&api_key={SECRETS[1]}",
            )
            assert (rc, status) == (0, 200)
    assert proxy.stop() == 0
    records, _ = asyncio.run(read_back(db_url))
    assert len(records) == 4 and all(r["host"] != "localhost" for r in records.values())
    dump = asyncio.run(dump_database(db_url)) + proxy.log_text()
    assert "Say hello, harness." in dump  # the request bodies were read, unpacked
    for secret in SECRETS:
        assert secret not in dump


async def dump_database(db_url: str) -> str:
    """Every byte the database holds, as text; packed bodies unpacked too, so a secret
    cannot hide behind compression."""
    from storage.rows import unpack_bodies

    kind, target = storage.parse_db_url(db_url)
    if kind == "sqlite":
        import sqlite3

        raw = "".join(
            Path(p).read_bytes().decode("latin-1")
            for p in (target, target + "-wal")
            if Path(p).exists()
        )
        with sqlite3.connect(target) as conn:
            blobs = [r[0] for r in conn.execute("SELECT packed FROM trace_bodies") if r[0]]
        return raw + "".join(json.dumps(unpack_bodies(b)) for b in blobs)
    import asyncpg

    from storage.postgres import split_schema

    dsn, schema = split_schema(db_url)
    conn = await asyncpg.connect(dsn)
    try:
        out = []
        for table in ("traces", "trace_bodies", "runs"):
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{schema}".{table} t')
            out.extend(r["row"] for r in rows)
        packed = await conn.fetch(f'SELECT packed FROM "{schema}".trace_bodies')
        out.extend(json.dumps(unpack_bodies(r["packed"])) for r in packed if r["packed"])
        return "\n".join(out)
    finally:
        await conn.close()


def test_sdk_client_is_unchanged_by_the_addon(db_url, proxy_factory, upstream, tmp_path):
    """The SDK gets the same objects through llmprof as straight from the upstream."""
    proxy = start_proxy(proxy_factory, db_url, tmp_path)
    request = make_request("openai", True, "CALL_TOOL get_weather for Paris")
    env = proxy.env_for_clients()
    ctx = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    proxied_http = SDK_HTTPX.Client(proxy=proxy.proxy_url, verify=ctx)
    with openai.OpenAI(api_key=API_KEY, max_retries=0, http_client=proxied_http) as c:
        via_proxy = [x.model_dump() for x in c.chat.completions.create(**request)]
    direct_http = upstream.direct_httpx_client(module=SDK_HTTPX)
    with openai.OpenAI(api_key=API_KEY, max_retries=0, http_client=direct_http) as c:
        direct = [x.model_dump() for x in c.chat.completions.create(**request)]
    assert via_proxy == direct
    assert proxy.stop() == 0
    _, items = asyncio.run(read_back(db_url))
    assert items[0]["called_tools"] == ["get_weather"]
