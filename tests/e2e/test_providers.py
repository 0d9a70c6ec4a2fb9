"""Every provider shape end to end: a real `mitmdump -s addon/llmprof.py`, curl and the openai
SDK through HTTPS_PROXY (and HTTP_PROXY / reverse mode for a plain-HTTP Ollama), the fake
upstream's real wire formats, the SQLite store read back.

For each call: the client's bytes through the proxy equal a direct call's, and the record's
tokens equal the fake's wire usage converted to llmprof's convention independently here.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import openai
import pytest

import storage
from tests.support.clients import API_KEY, SDK_HTTPX, run_curl
from tests.support.fake_providers import expected_wire_usage
from tests.support.fake_upstream import FakeUpstream, expected_text

ADDON = Path(__file__).resolve().parents[2] / "addon" / "llmprof.py"
REDIRECT = "*.openai.azure.com openrouter.ai api.groq.com api.mistral.ai api.deepseek.com api.x.ai"
AUTH = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
GEM = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:"
VERTEX = (
    "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1"
    "/publishers/google/models/gemini-2.0-flash:"
)
SECRET = "AIzaSECRETgeminiKey0001"


def start(proxy_factory, tmp_path, *args, env=None):
    db = f"sqlite:///{tmp_path / 'llmprof.db'}"
    proxy = proxy_factory(
        [ADDON],
        env={"LLMPROF_HOME": str(tmp_path / "home"), "LLMPROF_DB_URL": db, **(env or {})},
        extra_args=["--set", "llmprof_flush_ms=50", *args],
    )
    return proxy, db


async def _read(db: str) -> dict[str, dict]:
    async with storage.make_store(db, readonly=True) as s:
        return {i["session_id"]: await s.get(i["id"]) for i in await s.recent(limit=500)}


def read_back(db: str) -> dict[str, dict]:
    return asyncio.run(_read(db))


def curl_both(proxy, upstream, tmp_path, url, body, headers, *extra, direct=True):
    """POST through the proxy and (unless direct=False) straight to the fake upstream."""
    args = ["-X", "POST", url, "--data-binary", json.dumps(body), *extra]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    name = f"c{len(list(tmp_path.glob('*.out')))}"
    via = run_curl(
        ["--cacert", str(proxy.ca_cert), *args],
        tmp_path / f"{name}.out",
        env=proxy.env_for_clients(),
    )
    if direct:
        host = url.split("/")[2]
        straight = run_curl([*upstream.curl_direct_args(host), *args], tmp_path / f"{name}.direct")
        # same status and bytes (curl's exit code differs for a cut stream: h2 92, h1 18)
        assert via[1:] == straight[1:] and (via[0] == 0) == (straight[0] == 0), url
    return via


def normalized(api: str, host: str, u: dict) -> tuple:
    """(prompt, completion, cached, reasoning) from the wire usage, per provider convention."""
    if api == "responses":
        return (
            u["input_tokens"],
            u["output_tokens"],
            u["input_tokens_details"]["cached_tokens"],
            u["output_tokens_details"]["reasoning_tokens"],
        )
    if api == "gemini":
        thoughts = u.get("thoughtsTokenCount")
        return (
            u["promptTokenCount"] + u.get("toolUsePromptTokenCount", 0),
            u["candidatesTokenCount"] + (thoughts or 0),
            u.get("cachedContentTokenCount"),
            thoughts,
        )
    if api == "embeddings":
        return (u["prompt_tokens"], None, None, None)
    if api == "completions":
        return (u["prompt_tokens"], u["completion_tokens"], None, None)
    reasoning = u["completion_tokens_details"]["reasoning_tokens"]
    completion = u["completion_tokens"] + (reasoning if host == "api.x.ai" else 0)
    cached = (
        u["prompt_cache_hit_tokens"]
        if host == "api.deepseek.com"
        else u["prompt_tokens_details"]["cached_tokens"]
    )
    return (u["prompt_tokens"], completion, cached, reasoning)


def chat(text="Say hi.", stream=False, usage=True, model="gpt-4o-mini"):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
        if usage:
            body["stream_options"] = {"include_usage": True}
    return body


GEM_REQ = {
    "systemInstruction": {"parts": [{"text": "Be terse."}]},
    "contents": [{"role": "user", "parts": [{"text": "Say hello."}]}],
}
TOK = {"x-fake-cached": "1024", "x-fake-reasoning": "7"}

# sid -> (url, request, extra headers, api, streamed)
CASES = {
    "responses-json": (
        "https://api.openai.com/v1/responses",
        {"model": "gpt-4o-mini", "input": "hi", "instructions": "Be terse."},
        TOK,
        "responses",
        False,
    ),
    "responses-sse-tool": (
        "https://api.openai.com/v1/responses",
        {
            "model": "gpt-4o",
            "input": "CALL_TOOL get_weather in Oslo",
            "stream": True,
            "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
        },
        {"x-fake-split": "1"},
        "responses",
        True,
    ),
    "responses-truncated": (
        "https://api.openai.com/v1/responses",
        {"model": "gpt-4o", "input": "long", "stream": True, "max_output_tokens": 3},
        {},
        "responses",
        True,
    ),
    "responses-history": (
        "https://api.openai.com/v1/responses",
        {"model": "gpt-4o", "input": "and then?", "previous_response_id": "resp_abc"},
        {},
        "responses",
        False,
    ),
    "azure-responses": (
        "https://contoso.openai.azure.com/openai/v1/responses",
        {"model": "prod-4o", "input": "hi", "stream": True},
        {"x-fake-encoding": "br"},
        "responses",
        True,
    ),
    "gemini-json": (
        GEM + "generateContent",
        GEM_REQ,
        {**TOK, "x-fake-tool-use": "30"},
        "gemini",
        False,
    ),
    "gemini-array": (
        GEM + "streamGenerateContent",
        GEM_REQ,
        {**TOK, "x-fake-encoding": "zstd"},
        "gemini",
        True,
    ),
    "gemini-sse-key": (
        GEM + f"streamGenerateContent?alt=sse&key={SECRET}",
        GEM_REQ,
        {"x-fake-split": "1"},
        "gemini",
        True,
    ),
    "gemini-tool": (
        GEM + "generateContent",
        {"contents": [{"parts": [{"text": "CALL_TOOL lookup now"}]}]},
        {},
        "gemini",
        False,
    ),
    "vertex-array": (
        VERTEX + "streamGenerateContent",
        GEM_REQ,
        {"x-fake-encoding": "deflate"},
        "gemini",
        True,
    ),
    "gemini-embed": (
        GEM.replace("gemini-2.5-flash", "text-embedding-004") + "embedContent",
        {"content": {"parts": [{"text": "embed me"}]}},
        {},
        "gemini_embed",
        False,
    ),
    "gemini-batch-embed": (
        GEM.replace("gemini-2.5-flash", "text-embedding-004") + "batchEmbedContents",
        {
            "requests": [
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}}
            ]
        },
        {},
        "gemini_embed",
        False,
    ),
    "azure-deployment": (
        "https://contoso.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
        {"messages": [{"role": "user", "content": "hi"}]},
        TOK,
        "chat",
        False,
    ),
    "azure-v1-stream": (
        "https://contoso.openai.azure.com/openai/v1/chat/completions",
        chat(stream=True, model="prod-4o"),
        TOK,
        "chat",
        True,
    ),
    "groq-stream": (
        "https://api.groq.com/openai/v1/chat/completions",
        chat(stream=True, usage=False, model="llama-3.1-8b-instant"),
        {},
        "chat",
        True,
    ),
    "deepseek-json": (
        "https://api.deepseek.com/chat/completions",
        chat(model="deepseek-chat"),
        TOK,
        "chat",
        False,
    ),
    "openrouter-stream": (
        "https://openrouter.ai/api/v1/chat/completions",
        chat(stream=True, usage=False, model="openai/gpt-4o-mini"),
        {},
        "chat",
        True,
    ),
    "xai-json": (
        "https://api.x.ai/v1/chat/completions",
        chat(model="grok-3-mini"),
        {"x-fake-reasoning": "50"},
        "chat",
        False,
    ),
    "mistral-stream": (
        "https://api.mistral.ai/v1/chat/completions",
        chat(stream=True, usage=False, model="mistral-small-latest"),
        {},
        "chat",
        True,
    ),
    "embeddings": (
        "https://api.openai.com/v1/embeddings",
        {"model": "text-embedding-3-small", "input": ["one", "two"]},
        {},
        "embeddings",
        False,
    ),
    "completions-sse": (
        "https://api.openai.com/v1/completions",
        {
            "model": "gpt-3.5-turbo-instruct",
            "prompt": "Once",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {},
        "completions",
        True,
    ),
}
PROVIDER = {
    "api.openai.com": "openai",
    "generativelanguage.googleapis.com": "gemini",
    "us-central1-aiplatform.googleapis.com": "vertex",
    "contoso.openai.azure.com": "azure",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "openrouter.ai": "openrouter",
    "api.x.ai": "xai",
    "api.mistral.ai": "mistral",
}
NOT_RECORDED = [
    ("https://api.openai.com/v1/files", {"purpose": "batch"}),
    (
        "https://api.anthropic.com/v1/messages/count_tokens",
        {"model": "claude-sonnet-4-5", "messages": []},
    ),
    (GEM + "countTokens", GEM_REQ),
    ("https://api.openai.com/v1/responses/input_tokens", {"model": "gpt-4o", "input": "x"}),
]


def test_every_shape_is_recorded_exactly(proxy_factory, upstream, tmp_path):
    proxy, db = start(proxy_factory, tmp_path, env={"LLMPROF_TEST_REDIRECT_HOSTS": REDIRECT})
    for sid, (url, body, extra, _, _) in CASES.items():
        rc, status, _ = curl_both(
            proxy, upstream, tmp_path, url, body, {**AUTH, **extra, "x-llmprof-session": sid}
        )
        assert (rc, status) == (0, 200), sid
    # curl speaks HTTP/2 to the proxy by default (lazy mode offers h2; the upstream speaks
    # HTTP/1.1): the same calls over HTTP/1.1 too
    for sid, url, body in (
        ("h1-sse", GEM + "streamGenerateContent?alt=sse", GEM_REQ),
        ("h1-json", CASES["responses-json"][0], CASES["responses-json"][1]),
    ):
        rc, status, _ = curl_both(
            proxy, upstream, tmp_path, url, body, {**AUTH, "x-llmprof-session": sid}, "--http1.1"
        )
        assert (rc, status) == (0, 200)
    # failures, each in its provider's error shape
    failures = {
        "responses-429": ("https://api.openai.com/v1/responses", {"x-fake-status": "429"}),
        "gemini-array-503": (GEM + "streamGenerateContent", {"x-fake-status": "503"}),
        "gemini-sse-cut": (
            GEM + "streamGenerateContent?alt=sse",
            {"x-fake-abort-after": "3", "x-fake-gzip": "0"},
        ),
    }
    for sid, (url, extra) in failures.items():
        curl_both(
            proxy,
            upstream,
            tmp_path,
            url,
            GEM_REQ | {"input": "x"},
            {**AUTH, **extra, "x-llmprof-session": sid},
        )
    # the client hangs up mid-stream: what arrived is kept
    args = ["-X", "POST", GEM + "streamGenerateContent", "--data-binary", json.dumps(GEM_REQ)]
    for k, v in {**AUTH, "x-fake-delay-ms": "300", "x-llmprof-session": "gemini-gone"}.items():
        args += ["-H", f"{k}: {v}"]
    subprocess.run(
        ["curl", "-sS", "-N", "--max-time", "1", "--cacert", str(proxy.ca_cert), *args],
        capture_output=True,
        env=proxy.env_for_clients(),
        timeout=30,
    )
    # not LLM calls: passed through, not recorded
    for url, body in NOT_RECORDED:
        rc, status, out = curl_both(proxy, upstream, tmp_path, url, body, AUTH)
        assert (rc, status) == (0, 200) and json.loads(out)
    time.sleep(0.3)
    assert proxy.stop() == 0
    records = read_back(db)
    assert len(records) == len(CASES) + 2 + len(failures) + 1

    for sid, (url, body, extra, api, streamed) in CASES.items():
        rec, host = records[sid], url.split("/")[2]
        wire = expected_wire_usage(api, body, extra, host)
        assert (rec["provider"], rec["api"], rec["outcome"], rec["status"]) == (
            PROVIDER[host],
            api,
            "ok",
            200,
        ), sid
        assert rec["streamed"] is streamed and rec["request"] == body, sid
        if wire is None:  # Gemini embeddings: no usage on the wire
            assert rec["usage_source"] == "estimated" and rec["prompt_tokens"] > 0
            assert rec["completion_tokens"] is None
            continue
        got = (
            rec["prompt_tokens"],
            rec["completion_tokens"],
            rec["cached_tokens"],
            rec["reasoning_tokens"],
        )
        assert got == normalized(api, host, wire), sid
        assert rec["usage_source"] == "provider" and rec["usage_raw"] == wire, sid
        if streamed:
            assert 0 < rec["ttft_ms"] <= rec["latency_ms"], sid
    assert "?" not in json.dumps([r["endpoint"] for r in records.values()])
    assert SECRET not in json.dumps(records) + proxy.log_text()

    r = records
    assert r["azure-deployment"]["requested_model"] == "prod-4o"
    assert r["azure-deployment"]["model"] == "gpt-4o-2024-08-06"
    assert r["gemini-json"]["requested_model"] == "gemini-2.5-flash"
    assert r["vertex-array"]["model"] == "gemini-2.0-flash"
    assert r["responses-sse-tool"]["called_tools"] == ["get_weather"]
    assert r["gemini-tool"]["called_tools"] == ["lookup"]
    assert r["responses-truncated"]["response"]["status"] == "incomplete"
    assert r["openrouter-stream"]["usage_raw"]["cost"] > 0  # provider-reported cost, kept
    assert r["embeddings"]["response"]["data"][0]["embedding"] == {"dims": 4}
    text = expected_text("openai", chat())
    assert r["gemini-sse-key"]["response"]["candidates"][0]["content"]["parts"] == [{"text": text}]
    assert r["h1-sse"]["completion_tokens"] == 9 and r["h1-json"]["prompt_tokens"] > 0

    assert (r["responses-429"]["outcome"], r["responses-429"]["error"]) == (
        "http_error",
        "rate_limit_exceeded: Rate limit reached (fake upstream).",
    )
    assert r["responses-429"]["cost_usd"] == 0.0
    assert (r["gemini-array-503"]["outcome"], r["gemini-array-503"]["error"]) == (
        "http_error",
        "UNAVAILABLE: Resource has been exhausted (fake upstream).",
    )
    cut = r["gemini-sse-cut"]
    assert cut["outcome"] == "upstream_error" and cut["prompt_tokens"] > 0  # from the chunks seen
    gone = r["gemini-gone"]
    assert gone["outcome"] == "client_abort" and gone["prompt_tokens"] > 0 and gone["streamed"]

    history = r["responses-history"]
    assert history["request"]["previous_response_id"] == "resp_abc"
    assert history["analysis"]["history"] == "server-side"
    assert history["components"].get("server-side context", 0) >= 0


def sdk(proxy=None, upstream=None):
    if proxy is not None:
        import ssl

        ctx = ssl.create_default_context(cafile=str(proxy.ca_cert))
        http = SDK_HTTPX.Client(proxy=proxy.proxy_url, verify=ctx)
    else:
        http = upstream.direct_httpx_client(module=SDK_HTTPX)
    return openai.OpenAI(api_key=API_KEY, max_retries=0, http_client=http)


@pytest.mark.parametrize("inject", [False, True])
def test_streams_without_usage_estimated_or_injected(inject, proxy_factory, upstream, tmp_path):
    """Without include_usage: estimated by default; with llmprof_inject_usage the provider's
    usage is recorded and the client still gets exactly the stream it asked for."""
    args = ("--set", "llmprof_inject_usage=true") if inject else ()
    proxy, db = start(proxy_factory, tmp_path, *args)
    body = chat("Say hello.", stream=True, usage=False)
    # raw bytes (curl, no compression): identical to a direct call without include_usage
    curl_both(
        proxy,
        upstream,
        tmp_path,
        "https://api.openai.com/v1/chat/completions",
        body,
        {**AUTH, "x-llmprof-session": "curl"},
    )
    # the SDK (gzip accepted): the same chunks as a direct call
    with sdk(proxy) as c, sdk(upstream=upstream) as d:
        via = [
            x.model_dump()
            for x in c.chat.completions.create(**body, extra_headers={"x-llmprof-session": "sdk"})
        ]
        direct = [x.model_dump() for x in d.chat.completions.create(**body)]
        assert via == direct and all(x["choices"] for x in via)
        # a client that asked for usage itself is left alone either way
        asked = chat("Say hello, with usage.", stream=True)
        via = list(c.chat.completions.create(**asked, extra_headers={"x-llmprof-session": "asked"}))
        assert via[-1].usage is not None and via[-1].choices == []
        # Responses streams always carry usage (nothing to inject)
        events = list(
            c.responses.create(
                model="gpt-4o", input="hi", stream=True, extra_headers={"x-llmprof-session": "resp"}
            )
        )
        assert events[-1].type == "response.completed"
    assert proxy.stop() == 0
    records = read_back(db)
    # what reached the upstream for the two calls without include_usage (via proxy + direct)
    sent = [json.loads(rq.body) for rq in upstream.requests]
    mine = [x for x in sent if {k: v for k, v in x.items() if k != "stream_options"} == body]
    assert len(mine) == 4
    assert sum("stream_options" in x for x in mine) == (2 if inject else 0)
    wire = expected_wire_usage("chat", body, {})
    for sid in ("curl", "sdk"):
        rec = records[sid]
        assert rec["request"] == body  # what the client sent, not what llmprof sent
        if inject:
            assert (
                rec["usage_source"] == "provider" and rec["prompt_tokens"] == wire["prompt_tokens"]
            )
            assert rec["completion_tokens"] == wire["completion_tokens"]
        else:
            from addon.analysis import tokens

            enc = tokens.encoding_for("openai", "gpt-4o-mini")
            assert rec["usage_source"] == "estimated" and rec["prompt_tokens"] > 0
            assert rec["completion_tokens"] == tokens.count(expected_text("openai", body), enc)
            assert rec["cost_usd"] > 0  # priced from the estimate
    assert (
        records["asked"]["usage_source"] == "provider"
        and records["resp"]["usage_source"] == "provider"
    )


def test_plain_http_ollama_via_http_proxy_and_reverse_mode(proxy_factory, tmp_path):
    with FakeUpstream(tmp_path / "plain", tls=False) as plain:
        target = f"127.0.0.1:{plain.port}"
        proxy, db = start(proxy_factory, tmp_path, "--set", f"llmprof_hosts={target}")
        base = f"http://{target}"
        calls = {
            "ollama-chat": (
                "/api/chat",
                {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]},
            ),
            "ollama-generate": (
                "/api/generate",
                {"model": "llama3.2", "prompt": "hi", "stream": False},
            ),
            "ollama-embed": ("/api/embed", {"model": "all-minilm", "input": ["a", "b"]}),
            "ollama-openai": ("/v1/chat/completions", chat(stream=True, model="llama3.2")),
        }
        for sid, (path, body) in calls.items():
            args = [
                "-X",
                "POST",
                base + path,
                "--data-binary",
                json.dumps(body),
                "-H",
                "content-type: application/json",
                "-H",
                f"x-llmprof-session: {sid}",
            ]
            via = run_curl(args, tmp_path / f"{sid}.out", env=proxy.env_for_clients())
            straight = run_curl(["--noproxy", "*", *args], tmp_path / f"{sid}.direct")
            assert via[:2] == (0, 200) and via == straight, sid
        # reverse mode: clients talk to the proxy as if it were the server
        (tmp_path / "rev").mkdir()
        rev, rev_db = start(
            proxy_factory,
            tmp_path / "rev",
            "--mode",
            f"reverse:{base}",
            "--set",
            f"llmprof_hosts={target}",
        )
        body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
        args = [
            "--noproxy",
            "*",
            "-X",
            "POST",
            f"http://127.0.0.1:{rev.port}/api/chat",
            "--data-binary",
            json.dumps(body),
            "-H",
            "x-llmprof-session: reverse",
        ]
        assert run_curl(args, tmp_path / "rev.out")[:2] == (0, 200)
        assert proxy.stop() == 0 and rev.stop() == 0
    records = read_back(db)
    chat_rec = records["ollama-chat"]
    assert (chat_rec["provider"], chat_rec["api"], chat_rec["streamed"], chat_rec["host"]) == (
        "ollama",
        "ollama_chat",
        True,
        target,
    )
    wire = expected_wire_usage("ollama_chat", calls["ollama-chat"][1], {})
    assert (chat_rec["prompt_tokens"], chat_rec["completion_tokens"]) == (
        wire["prompt_eval_count"],
        wire["eval_count"],
    )
    assert chat_rec["response"]["message"]["content"] == expected_text("openai", chat())
    assert chat_rec["ttft_ms"] > 0
    gen = records["ollama-generate"]
    assert not gen["streamed"] and gen["response"]["context"]["tokens"] > 0
    assert (
        records["ollama-embed"]["prompt_tokens"] > 0
        and records["ollama-embed"]["completion_tokens"] is None
    )
    assert (
        records["ollama-openai"]["provider"] == "127.0.0.1"
        and records["ollama-openai"]["api"] == "chat"
    )
    rev_rec = read_back(rev_db)["reverse"]
    assert rev_rec["api"] == "ollama_chat" and rev_rec["completion_tokens"] == 9
