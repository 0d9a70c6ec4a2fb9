"""The addon's options, host filtering and hooks, under mitmproxy's test context."""

from __future__ import annotations

import json

import pytest
from mitmproxy import exceptions, http, tls
from mitmproxy.test import taddons, tflow, tutils

from addon.hosts import HostMatcher
from addon.recorder import FLOW_KEY, LLMProf


def test_host_matching_is_anchored():
    m = HostMatcher(["*.openai.azure.com", "vllm.internal:8000", "gateway.corp"])
    assert m("api.openai.com") and m("API.OpenAI.com.") and m("api.anthropic.com", 443)
    assert not m("notopenai.com") and not m("api.openai.com.evil") and not m("evil-api.openai.com")
    assert m("myres.openai.azure.com") and not m("openai.azure.com")
    assert m("vllm.internal", 8000) and not m("vllm.internal", 8001) and not m("vllm.internal")
    assert m("gateway.corp", 9999) and not m(None) and not m("")
    for bad in ["", "a b/c", "x:99999", "x:http", "*bad*"]:
        with pytest.raises(ValueError):
            HostMatcher([bad])


def test_options_are_validated_at_configure(tmp_path):
    addon = LLMProf()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, llmprof_db_url=f"sqlite:///{tmp_path}/x.db", llmprof_hosts=["a.b:81"])
        assert addon.hosts("a.b", 81)
        with pytest.raises(exceptions.OptionsError, match="unsupported database URL"):
            tctx.configure(addon, llmprof_db_url="mysql://u@h/db")
        with pytest.raises(exceptions.OptionsError, match="llmprof_hosts"):
            tctx.configure(addon, llmprof_hosts=["x:0"])
        with pytest.raises(exceptions.OptionsError, match="llmprof_batch must be"):
            tctx.configure(addon, llmprof_batch=0)


def _hello_data(sni: str, address: tuple[str, int]) -> tls.ClientHelloData:
    from mitmproxy.proxy import context

    ctx = context.Context(tflow.tclient_conn(), None)
    ctx.server = tflow.tserver_conn()
    ctx.server.address = address
    return tls.ClientHelloData(ctx, tls.ClientHello(_hello_for(sni)))


def test_non_llm_tls_is_not_intercepted():
    addon = LLMProf()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, llmprof_hosts=["gateway.corp", "vllm.lan:8000"])
        cases = {
            ("example.com", ("example.com", 443)): True,
            ("notopenai.com", ("notopenai.com", 443)): True,
            ("api.openai.com", ("api.openai.com", 443)): False,
            ("gateway.corp", ("gateway.corp", 443)): False,
            ("vllm.lan", ("vllm.lan", 8000)): False,
            ("vllm.lan", ("vllm.lan", 8443)): True,
        }
        for (sni, address), ignored in cases.items():
            data = _hello_data(sni, address)
            assert data.client_hello.sni == sni
            addon.tls_clienthello(data)
            assert data.ignore_connection is ignored, (sni, address)


def _hello_for(name: str) -> bytes:
    host = name.encode()
    server_name = b"\x00" + len(host).to_bytes(2, "big") + host
    sni_list = len(server_name).to_bytes(2, "big") + server_name
    ext = b"\x00\x00" + len(sni_list).to_bytes(2, "big") + sni_list
    return (
        bytes.fromhex("0303")
        + b"\x00" * 32
        + b"\x00"
        + bytes.fromhex("0002c02f0100")
        + len(ext).to_bytes(2, "big")
        + ext
    )


def test_hooks_tee_only_llm_calls_and_enqueue(tmp_path):
    addon = LLMProf()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, llmprof_db_url=f"sqlite:///{tmp_path}/x.db")

        class FakeWriter:
            def __init__(self):
                self.got = []

            def submit(self, ex):
                self.got.append(ex)

        addon.writer = FakeWriter()
        llm = tflow.tflow(
            req=tutils.treq(
                host="api.openai.com",
                port=443,
                method=b"POST",
                path=b"/v1/chat/completions",
                content=b"{}",
            ),
            resp=tutils.tresp(headers=http.Headers(content_type="text/event-stream"), content=b""),
        )
        other = tflow.tflow(
            req=tutils.treq(
                host="example.com", port=443, method=b"POST", path=b"/v1/chat/completions"
            ),
            resp=True,
        )
        models = tflow.tflow(
            req=tutils.treq(host="api.openai.com", port=443, method=b"GET", path=b"/v1/models"),
            resp=True,
        )
        for f in (llm, other, models):
            addon.requestheaders(f)
            addon.responseheaders(f)
        # LLM calls are teed; anything else is streamed through untouched, never buffered
        assert callable(llm.response.stream)
        assert other.response.stream is True and models.response.stream is True
        chunk = b'data: {"choices": []}\n\n'
        assert llm.response.stream(chunk) is chunk
        llm.response.stream(b"")
        for f in (llm, other, models):
            addon.response(f)
        assert len(addon.writer.got) == 1 and FLOW_KEY not in llm.metadata
        ex = addon.writer.got[0]
        assert ex.chunks == [chunk] and ex.teed and ex.path == "/v1/chat/completions"
        assert json.loads(ex.request_body) == {}


def test_a_broken_price_file_stops_the_proxy_at_startup(tmp_path, monkeypatch):
    bad = tmp_path / "prices.json"
    bad.write_text('{"my-model": {"input": "cheap"}}')
    monkeypatch.setenv("LLMPROF_PRICING", str(bad))
    addon = LLMProf()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="LLMPROF_PRICING: .*prices.json"):
            tctx.configure(addon, llmprof_db_url=f"sqlite:///{tmp_path}/x.db")


def test_bad_retention_setting_is_a_startup_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPROF_RETENTION_DAYS", "a month")
    addon = LLMProf()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="LLMPROF_RETENTION_DAYS='a month'"):
            tctx.configure(addon, llmprof_db_url=f"sqlite:///{tmp_path}/x.db")


async def test_workers_write_unless_the_database_lives_in_this_process(tmp_path):
    """With workers the writes go to them (their own connections), except for an
    in-memory SQLite database, which only this process can see."""
    for url, expected in ((f"sqlite:///{tmp_path}/w.db", f"sqlite:///{tmp_path}/w.db"),
                          ("sqlite::memory:", None)):  # fmt: skip
        addon = LLMProf()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, llmprof_db_url=url, llmprof_workers=1)
            addon.running()
            try:
                assert addon.writer.worker_db_url == expected
                assert addon.writer.concurrency == 1
            finally:
                await addon.done()
