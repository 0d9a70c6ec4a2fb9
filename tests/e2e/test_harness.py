"""Proves the e2e harness WITHOUT llmprof: mitmdump runs only tests/support/redirect.py.

For each client (curl, httpx, the openai SDK, the anthropic SDK) the status and body bytes a
client gets through the proxy equal those of a direct call to the fake upstream, streams arrive
event by event, gzip survives, and the fake upstream recorded what the proxy forwarded.
"""

from __future__ import annotations

import json
import subprocess
import time
import zlib

import anthropic
import httpx
import openai
import openai._base_client
import pytest

from tests.support.clients import (  # noqa: E402
    API_KEY,
    CASES,
    FAKE_HEADERS,
    SDK_HTTPX,
    URLS,
    auth_headers,
    curl_post,
    make_request,
    run_curl,
    sse_events,
)
from tests.support.fake_upstream import (
    MODELS_LIST,
    TOOL_ARGUMENTS,
    FakeUpstream,
    expected_text,
    expected_usage,
)
from tests.support.proxy import REDIRECT_SCRIPT, MitmdumpProcess, start_mitmdump


def check_body(provider: str, stream: bool, request: dict, headers: dict, body: bytes) -> None:
    """The body is the provider's real shape with the usage expected_usage() predicts."""
    usage = expected_usage(provider, request, headers)
    if not stream:
        obj = json.loads(body)
        assert obj["usage"] == usage
        if provider == "openai":
            assert obj["object"] == "chat.completion"
            assert obj["choices"][0]["message"]["content"] == expected_text(provider, request)
        else:
            assert obj["type"] == "message"
            assert obj["content"][0]["text"] == expected_text(provider, request)
        return
    events = sse_events(body)
    if provider == "openai":
        assert events[-1] == (None, "[DONE]")
        chunks = [json.loads(data) for _, data in events[:-1]]
        assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
        assert text == expected_text(provider, request)
    else:
        names = [name for name, _ in events]
        assert names[:3] == ["message_start", "content_block_start", "ping"]
        assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
        start = json.loads(events[0][1])["message"]["usage"]
        delta = json.loads(events[-2][1])
        assert start["output_tokens"] == 1
        assert {**start, "output_tokens": delta["usage"]["output_tokens"]} == usage


@pytest.fixture(scope="module")
def harness_proxy(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> MitmdumpProcess:
    # Without llmprof nothing sets flow.response.stream, and mitmproxy buffers a whole SSE body
    # before forwarding it. stream_large_bodies=1 makes it stream every body (from its first
    # chunk on), which is what llmprof's responseheaders hook does for LLM streams.
    proc = start_mitmdump(
        tmp_path_factory.mktemp("harness-proxy"),
        scripts=[REDIRECT_SCRIPT],
        extra_args=["--set", "stream_large_bodies=1"],
        env={"LLMPROF_TEST_UPSTREAM": fake_upstream.address},
    )
    yield proc
    proc.stop()


@pytest.fixture
def client_env(harness_proxy: MitmdumpProcess, monkeypatch: pytest.MonkeyPatch) -> dict:
    """os.environ as a proxied client sees it (HTTPS_PROXY, SSL_CERT_FILE = mitmproxy CA)."""
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for key, value in harness_proxy.env_for_clients(base={}).items():
        monkeypatch.setenv(key, value)
    return harness_proxy.env_for_clients()


# --------------------------------------------------------------------------- curl


@pytest.mark.parametrize(("provider", "stream"), CASES)
def test_curl_direct_vs_proxy(
    provider, stream, upstream, harness_proxy, client_env, tmp_path
) -> None:
    request = make_request(provider, stream)
    headers = {**auth_headers(provider), **FAKE_HEADERS[provider]}
    host = URLS[provider].split("/")[2]
    args = curl_post(URLS[provider], request, headers)

    rc_d, status_d, direct = run_curl([*upstream.curl_direct_args(host), *args], tmp_path / "d")
    rc_p, status_p, proxied = run_curl(
        ["--cacert", str(harness_proxy.ca_cert), *args], tmp_path / "p", env=client_env
    )

    assert (rc_d, status_d, rc_p, status_p) == (0, 200, 0, 200)
    assert proxied == direct
    check_body(provider, stream, request, headers, proxied)
    # Both calls reached the fake upstream under the real Host, with the same body.
    seen = upstream.requests
    assert len(seen) == 2
    for rec in seen:
        assert (rec.method, rec.path, rec.header("host")) == (
            "POST",
            URLS[provider][len(host) + 8 :],
            host,
        )
        assert rec.json() == request
        assert rec.header("x-fake-cached") == "1500"
    assert seen[0].body == seen[1].body


def test_curl_gzip_stream_raw_bytes(upstream, harness_proxy, client_env, tmp_path) -> None:
    """Without --compressed curl keeps the gzip bytes: the proxy passes them on untouched."""
    request = make_request("openai", True)
    headers = {**auth_headers("openai"), "x-fake-gzip": "1", "x-fake-split": "1"}
    args = curl_post(URLS["openai"], request, headers)
    _, status_d, direct = run_curl([*upstream.curl_direct_args(), *args], tmp_path / "d")
    _, status_p, proxied = run_curl(
        ["--cacert", str(harness_proxy.ca_cert), *args], tmp_path / "p", env=client_env
    )
    assert status_d == status_p == 200
    assert proxied == direct and proxied[:2] == b"\x1f\x8b"
    check_body("openai", True, request, headers, zlib.decompress(proxied, 31))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_error_status(provider, upstream, harness_proxy, client_env, tmp_path) -> None:
    request = make_request(provider, True)
    headers = {**auth_headers(provider), "x-fake-status": "429"}
    args = curl_post(URLS[provider], request, headers)
    host = URLS[provider].split("/")[2]
    _, status_d, direct = run_curl([*upstream.curl_direct_args(host), *args], tmp_path / "d")
    _, status_p, proxied = run_curl(
        ["--cacert", str(harness_proxy.ca_cert), *args], tmp_path / "p", env=client_env
    )
    assert status_d == status_p == 429 and proxied == direct
    error = json.loads(proxied)
    if provider == "openai":
        assert set(error["error"]) == {"message", "type", "param", "code"}
        with openai.OpenAI(api_key=API_KEY, max_retries=0) as client:
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(**request, extra_headers={"x-fake-status": "429"})
    else:
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
        with anthropic.Anthropic(api_key=API_KEY, max_retries=0) as client:
            with pytest.raises(anthropic.RateLimitError):
                client.messages.create(**request, extra_headers={"x-fake-status": "429"})


def test_models_get(upstream, harness_proxy, client_env, tmp_path) -> None:
    url = ["https://api.openai.com/v1/models", "-H", f"authorization: Bearer {API_KEY}"]
    _, status_d, direct = run_curl([*upstream.curl_direct_args(), *url], tmp_path / "d")
    _, status_p, proxied = run_curl(
        ["--cacert", str(harness_proxy.ca_cert), *url], tmp_path / "p", env=client_env
    )
    assert status_d == status_p == 200 and proxied == direct
    assert json.loads(proxied) == MODELS_LIST


# --------------------------------------------------------------------------- httpx


@pytest.mark.parametrize(("provider", "stream"), CASES)
def test_httpx_direct_vs_proxy(provider, stream, upstream, client_env) -> None:
    request = make_request(provider, stream)
    headers = {**auth_headers(provider), **FAKE_HEADERS[provider]}

    def call(client: httpx.Client) -> tuple[int, str | None, bytes]:
        with client, client.stream("POST", URLS[provider], json=request, headers=headers) as r:
            return r.status_code, r.headers.get("content-encoding"), r.read()

    direct = call(upstream.direct_httpx_client())
    proxied = call(httpx.Client())  # trust_env: HTTPS_PROXY + SSL_CERT_FILE from client_env
    # httpx asks for gzip, the upstream honours it; httpx decodes it on both paths.
    assert direct == proxied == (200, "gzip", proxied[2])
    check_body(provider, stream, request, headers, proxied[2])
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_httpx_upstream_abort_mid_stream(provider, upstream, client_env) -> None:
    request = make_request(provider, True)
    headers = {**auth_headers(provider), "x-fake-abort-after": "2", "x-fake-gzip": "0"}

    def call(client: httpx.Client) -> tuple[bytes, BaseException | None]:
        got = b""
        with client:
            try:
                with client.stream("POST", URLS[provider], json=request, headers=headers) as r:
                    for chunk in r.iter_raw():
                        got += chunk
            except httpx.HTTPError as exc:
                return got, exc
        return got, None

    direct, direct_exc = call(upstream.direct_httpx_client())
    proxied, proxied_exc = call(httpx.Client())
    assert isinstance(direct_exc, httpx.RemoteProtocolError)
    assert isinstance(proxied_exc, httpx.RemoteProtocolError)
    assert proxied == direct and len(sse_events(direct)) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_stream_arrives_event_by_event(provider, upstream, client_env) -> None:
    request = make_request(provider, True)
    headers = {
        **auth_headers(provider),
        "x-fake-delay-ms": "200",
        "x-fake-words": "1",
        "x-fake-split": "1",
    }
    arrivals: list[tuple[float, str]] = []
    t0 = time.monotonic()
    with httpx.Client() as client:  # gzip (httpx's default accept-encoding) stays incremental
        with client.stream("POST", URLS[provider], json=request, headers=headers) as r:
            assert r.headers["content-encoding"] == "gzip"
            for line in r.iter_lines():
                if line.startswith("data:"):
                    arrivals.append((time.monotonic() - t0, line))
    n = len(arrivals)
    assert n == (5 if provider == "openai" else 7)
    first, last = arrivals[0][0], arrivals[-1][0]
    # n events 200 ms apart: buffering would deliver them all at once at the end.
    assert last - first >= 0.75 * 0.2 * (n - 1), arrivals
    assert first < last - 0.5


# --------------------------------------------------------------------------- SDKs


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_openai_sdk_direct_vs_proxy(stream, upstream, client_env) -> None:
    request = make_request("openai", stream)
    fake = FAKE_HEADERS["openai"]

    def call(client: openai.OpenAI):
        with client:
            return _call(client)

    def _call(client: openai.OpenAI):
        if not stream:
            raw = client.chat.completions.with_raw_response.create(**request, extra_headers=fake)
            return raw.status_code, raw.content, raw.parse().model_dump(exclude_unset=True)
        chunks = client.chat.completions.create(**request, extra_headers=fake)
        return 200, None, [c.model_dump(exclude_unset=True) for c in chunks]

    direct = call(
        openai.OpenAI(
            api_key=API_KEY,
            max_retries=0,
            http_client=upstream.direct_httpx_client(module=SDK_HTTPX),
        )
    )
    proxied = call(openai.OpenAI(api_key=API_KEY, max_retries=0))
    assert proxied == direct
    usage = expected_usage("openai", request, fake)
    if stream:
        assert proxied[2][-1]["usage"] == usage
    else:
        check_body("openai", False, request, fake, proxied[1])
    rec = upstream.requests[-1]
    assert rec.header("authorization") == f"Bearer {API_KEY}"
    assert rec.header("host") == "api.openai.com"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_anthropic_sdk_direct_vs_proxy(stream, upstream, client_env) -> None:
    request = make_request("anthropic", stream)
    fake = FAKE_HEADERS["anthropic"]

    def call(client: anthropic.Anthropic):
        with client:
            return _call(client)

    def _call(client: anthropic.Anthropic):
        if not stream:
            raw = client.messages.with_raw_response.create(**request, extra_headers=fake)
            return raw.status_code, raw.read(), raw.parse().model_dump(exclude_unset=True)
        events = client.messages.create(**request, extra_headers=fake)
        return 200, None, [e.model_dump(exclude_unset=True) for e in events]

    direct = call(
        anthropic.Anthropic(
            api_key=API_KEY,
            max_retries=0,
            http_client=upstream.direct_httpx_client(module=SDK_HTTPX),
        )
    )
    proxied = call(anthropic.Anthropic(api_key=API_KEY, max_retries=0))
    assert proxied == direct
    usage = expected_usage("anthropic", request, fake)
    if stream:
        start, delta = proxied[2][0], proxied[2][-2]
        assert start["type"] == "message_start" and delta["type"] == "message_delta"
        assert start["message"]["usage"]["cache_read_input_tokens"] == 1500
        assert delta["usage"]["output_tokens"] == usage["output_tokens"]
    else:
        check_body("anthropic", False, request, fake, proxied[1])
    rec = upstream.requests[-1]
    # anthropic 2.x sends the key as "authorization: Bearer", older SDKs as x-api-key.
    assert API_KEY in (rec.header("x-api-key") or rec.header("authorization") or "")
    assert rec.header("host") == "api.anthropic.com"


def test_sdk_tool_calls_through_proxy(upstream, client_env) -> None:
    with openai.OpenAI(api_key=API_KEY, max_retries=0) as oai:
        chunks = list(
            oai.chat.completions.create(
                **make_request("openai", True, "CALL_TOOL get_weather for Paris")
            )
        )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather" and len(calls) > 2
    assert "".join(tc.function.arguments or "" for tc in calls) == TOOL_ARGUMENTS
    assert chunks[-2].choices[0].finish_reason == "tool_calls"

    request = make_request("anthropic", False, "CALL_TOOL get_weather")
    with anthropic.Anthropic(api_key=API_KEY, max_retries=0) as ant:
        with ant.messages.stream(**request) as events:
            message = events.get_final_message()
    assert message.stop_reason == "tool_use"
    assert message.content[0].name == "get_weather"
    assert message.content[0].input == json.loads(TOOL_ARGUMENTS)


# --------------------------------------------------------------------------- proxy_factory


HOST_LOGGER = """
import logging

def response(flow):
    req = flow.request
    logging.info(f"host-seen: {req.host} {req.pretty_host} {flow.server_conn.address}")
"""


def test_proxy_factory_start_stop(proxy_factory, upstream, tmp_path) -> None:
    """Scripts load after the redirect, keep the real host, and their info logs are visible."""
    script = tmp_path / "host_logger.py"
    script.write_text(HOST_LOGGER)
    proc = proxy_factory([script])  # no stream_large_bodies: plain JSON works all the same
    args = curl_post(URLS["anthropic"], make_request("anthropic", False), auth_headers("anthropic"))
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "20", *args],
        capture_output=True,
        env=proc.env_for_clients(),
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["type"] == "message"
    proc.wait_for_log("llmprof-test-redirect: api.anthropic.com:443 -> " + upstream.address)
    port = upstream.port
    proc.wait_for_log(f"host-seen: api.anthropic.com api.anthropic.com ('127.0.0.1', {port})")
    assert proc.stop() == 0
    assert not proc.is_running()
