"""Golden prices per provider usage shape, worked out by hand from genai-prices' rates.

Every expected dollar figure below is computed in the comment next to it from the
per-million-token (USD/M) rates in the installed genai-prices snapshot. Counts follow
llmprof's convention: prompt_tokens includes cache reads and writes, completion_tokens
includes reasoning. All calls are priced at a fixed instant (TS) because the library
keeps price history (o3's June 2025 cut, Sonnet 4.6 dropping its >200k tier).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from importlib.metadata import version

import genai_prices
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.analysis.pricing import LIBRARY_SOURCE, Price, load_overrides, price

TS = datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp()


def call(provider, model, prompt, completion, cached=None, write=None, reasoning=None, **kw):
    kw.setdefault("ts", TS)
    return price(
        provider,
        model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cache_write_tokens=write,
        reasoning_tokens=reasoning,
        **kw,
    )


def approx(x):
    return pytest.approx(x, rel=1e-9)


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv("LLMPROF_PRICING", raising=False)


# --- OpenAI ------------------------------------------------------------------------


def test_openai_chat_with_cached_tokens():
    # gpt-4o: input $2.50/M, cached input $1.25/M, output $10/M.
    # 10,000 prompt of which 4,000 cached, 1,000 output:
    #   6,000 x 2.50/M = 0.015; 4,000 x 1.25/M = 0.005; 1,000 x 10/M = 0.010 -> 0.030
    p = call("openai", "gpt-4o", 10_000, 1_000, cached=4_000)
    assert p.cost_usd == approx(0.030)
    assert p.priced and p.model_ref == "openai:gpt-4o"
    assert p.source == LIBRARY_SOURCE == f"genai-prices {version('genai-prices')}"
    assert p.parts == {
        "uncached_input": approx(0.015),
        "cache_read": approx(0.005),
        "cache_write": 0.0,
        "output": approx(0.010),
    }
    assert p.input_rate_per_mtok == 2.5


def test_openai_gpt41_dated_snapshot():
    # gpt-4.1-2025-04-14 -> gpt-4.1: input $2/M, cached $0.50/M, output $8/M.
    #   20,000 x 2/M = 0.04; 100,000 x 0.5/M = 0.05; 2,000 x 8/M = 0.016 -> 0.106
    p = call("openai", "gpt-4.1-2025-04-14", 120_000, 2_000, cached=100_000)
    assert (p.cost_usd, p.model_ref) == (approx(0.106), "openai:gpt-4.1")


def test_o_series_reasoning_is_not_billed_twice():
    # o3 (price since 2025-06-10): input $2/M, cached $0.50/M, output $8/M.
    # 5,000 completion tokens of which 4,000 are reasoning (already inside completion):
    #   10,000 x 2/M = 0.02; 10,000 x 0.5/M = 0.005; 5,000 x 8/M = 0.04 -> 0.065
    # (adding reasoning again would give 0.097)
    p = call("openai", "o3", 20_000, 5_000, cached=10_000, reasoning=4_000)
    assert p.cost_usd == approx(0.065)
    assert p.parts["output"] == approx(0.04)


def test_o_series_historic_price():
    # o3 before 2025-06-10: input $10/M, cached $0.50/M, output $40/M.
    #   10,000 x 10/M = 0.1; 10,000 x 0.5/M = 0.005; 5,000 x 40/M = 0.2 -> 0.305
    may_2025 = datetime(2025, 5, 1, tzinfo=UTC).timestamp()
    p = call("openai", "o3-2025-04-16", 20_000, 5_000, cached=10_000, reasoning=4_000, ts=may_2025)
    assert (p.cost_usd, p.input_rate_per_mtok) == (approx(0.305), 10.0)


def test_dated_snapshots_match_their_family_or_their_own_entry():
    # gpt-4o-2024-08-06 is priced as gpt-4o (same 0.030 as above).
    p = call("openai", "gpt-4o-2024-08-06", 10_000, 1_000, cached=4_000)
    assert (p.cost_usd, p.model_ref) == (approx(0.030), "openai:gpt-4o")
    # gpt-4o-2024-05-13 has its own entry: input $5/M, output $15/M, no cached price,
    # so cached tokens bill at the input rate:
    #   6,000 x 5/M = 0.03; 4,000 x 5/M = 0.02; 1,000 x 15/M = 0.015 -> 0.065
    p = call("openai", "gpt-4o-2024-05-13", 10_000, 1_000, cached=4_000)
    assert (p.cost_usd, p.model_ref) == (approx(0.065), "openai:gpt-4o-2024-05-13")
    assert p.parts["cache_read"] == approx(0.02)
    # Anthropic's dated id -> claude-sonnet-4-5 (checked in the next test's numbers).
    p = call("anthropic", "claude-sonnet-4-5-20250929", 1_000_000, 0)
    assert p.model_ref == "anthropic:claude-sonnet-4-5"


# --- Anthropic -----------------------------------------------------------------------


def test_anthropic_cache_reads_and_5m_writes():
    # claude-sonnet-4-5 (<= 200k input): input $3/M, cache read $0.30/M (0.1x),
    # 5-minute cache write $3.75/M (1.25x), output $15/M.
    # prompt 50,000 = 2,000 uncached + 40,000 read + 8,000 written; 1,500 output:
    #   2,000 x 3/M = 0.006; 40,000 x 0.3/M = 0.012; 8,000 x 3.75/M = 0.03;
    #   1,500 x 15/M = 0.0225 -> 0.0705
    p = call("anthropic", "claude-sonnet-4-5-20250929", 50_000, 1_500, cached=40_000, write=8_000)
    assert p.cost_usd == approx(0.0705)
    assert p.parts == {
        "uncached_input": approx(0.006),
        "cache_read": approx(0.012),
        "cache_write": approx(0.03),
        "output": approx(0.0225),
    }


def test_anthropic_1h_cache_writes():
    # Same call, 3,000 of the 8,000 written tokens with the 1-hour TTL ($6/M, 2x):
    #   5,000 x 3.75/M = 0.01875; 3,000 x 6/M = 0.018 -> writes 0.03675
    #   0.006 + 0.012 + 0.03675 + 0.0225 = 0.07725
    p = call(
        "anthropic", "claude-sonnet-4-5", 50_000, 1_500, 40_000, 8_000, cache_write_1h_tokens=3_000
    )
    assert p.cost_usd == approx(0.07725)
    assert p.parts["cache_write"] == approx(0.03675)


def test_anthropic_long_context_tier_counts_cached_input():
    # claude-sonnet-4-5 above 200k total input: input $6/M, read $0.60/M, write $7.50/M,
    # output $22.50/M. Only 10,000 tokens are uncached, but the tier is decided by the
    # whole prompt (210,000 incl. cache), and then applies to every token:
    #   10,000 x 6/M = 0.06; 150,000 x 0.6/M = 0.09; 50,000 x 7.5/M = 0.375;
    #   1,000 x 22.5/M = 0.0225 -> 0.5475
    p = call("anthropic", "claude-sonnet-4-5", 210_000, 1_000, cached=150_000, write=50_000)
    assert (p.cost_usd, p.input_rate_per_mtok) == (approx(0.5475), 6.0)


def test_bracket_annotation_and_tier_history():
    # claude-sonnet-4-6[1m] is claude-sonnet-4-6. Since 2026-03-13 it has no >200k tier:
    #   20,000 x 3/M = 0.06; 280,000 x 0.3/M = 0.084; 4,000 x 15/M = 0.06 -> 0.204
    p = call("anthropic", "claude-sonnet-4-6[1m]", 300_000, 4_000, cached=280_000)
    assert (p.cost_usd, p.model_ref) == (approx(0.204), "anthropic:claude-sonnet-4-6")
    # Before that, >200k input cost $6/M, read $0.60/M, output $22.50/M:
    #   20,000 x 6/M = 0.12; 280,000 x 0.6/M = 0.168; 4,000 x 22.5/M = 0.09 -> 0.378
    feb = datetime(2026, 2, 1, tzinfo=UTC).timestamp()
    p = call("anthropic", "claude-sonnet-4-6[1m]", 300_000, 4_000, cached=280_000, ts=feb)
    assert p.cost_usd == approx(0.378)


# --- Gemini --------------------------------------------------------------------------


def test_gemini_flash_cached_and_thoughts():
    # gemini-2.5-flash: input $0.30/M, cached $0.03/M, output (thoughts too) $2.50/M.
    # The Gemini API names the model "models/..."; llmprof names the host as provider.
    # completion 900 already includes the 600 thought tokens:
    #   4,000 x 0.3/M = 0.0012; 8,000 x 0.03/M = 0.00024; 900 x 2.5/M = 0.00225 -> 0.00369
    host = "generativelanguage.googleapis.com"
    p = call(host, "models/gemini-2.5-flash", 12_000, 900, cached=8_000, reasoning=600)
    assert (p.cost_usd, p.model_ref) == (approx(0.00369), "google:gemini-2.5-flash")


def test_gemini_pro_long_context_tier():
    # gemini-2.5-pro: <= 200k prompt: input $1.25/M, cached $0.125/M, output $10/M;
    # > 200k: input $2.50/M, cached $0.25/M, output $15/M.
    #   150,000 x 2.5/M = 0.375; 100,000 x 0.25/M = 0.025; 2,000 x 15/M = 0.03 -> 0.43
    p = call("gemini", "gemini-2.5-pro", 250_000, 2_000, cached=100_000, reasoning=1_500)
    assert (p.cost_usd, p.input_rate_per_mtok) == (approx(0.43), 2.5)
    # The boundary is "more than 200,000": 200,000 x 1.25/M = 0.25; 200,001 x 2.5/M = 0.5000025
    assert call("google", "gemini-2.5-pro", 200_000, 0).cost_usd == approx(0.25)
    assert call("google", "gemini-2.5-pro", 200_001, 0).cost_usd == approx(0.5000025)


# --- provider hints, unknown models, no usage ---------------------------------------


def test_provider_hint_finds_models_the_name_alone_does_not():
    # llama-3.1-8b-instant is only known under groq: input $0.05/M, output $0.08/M.
    #   1,000 x 0.05/M = 0.00005; 100 x 0.08/M = 0.000008 -> 0.000058
    for provider, host in (("groq", None), ("api.groq.com", None), ("x", "api.groq.com")):
        p = call(provider, "llama-3.1-8b-instant", 1_000, 100, host=host)
        assert (p.cost_usd, p.model_ref) == (approx(0.000058), "groq:llama-3.1-8b-instant")
    assert call(None, "llama-3.1-8b-instant", 1_000, 100).cost_usd is None


def test_unknown_model_is_none_never_zero():
    p = call("localhost:8000", "acme-llm-9000", 1_000, 100)
    assert p.cost_usd is None and p.cost_usd != 0.0
    assert (p.priced, p.source, p.model_ref, p.parts) == (False, None, None, {})
    assert "acme-llm-9000" in p.note
    assert call("openai", None, 1_000, 100).cost_usd is None


def test_no_usage_is_unpriced():
    assert call("openai", "gpt-4o", None, None) == Price()
    assert call("openai", "gpt-4o", None, None).cost_usd is None


def test_prompt_smaller_than_cache_is_clamped_and_noted():
    # A parser that reported input excluding cache: 100 < 500 cached. Uncached is 0,
    # cached 500 x 1.25/M = 0.000625, output 10 x 10/M = 0.0001 -> 0.000725
    p = call("openai", "gpt-4o", 100, 10, cached=500)
    assert p.cost_usd == approx(0.000725)
    assert p.parts["uncached_input"] == 0.0 and "uncached set to 0" in p.note


# --- overrides -----------------------------------------------------------------------


def _override(tmp_path, monkeypatch, data, name="prices.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    monkeypatch.setenv("LLMPROF_PRICING", str(path))
    return str(path)


def test_override_exact_and_prefix(tmp_path, monkeypatch):
    path = _override(
        tmp_path,
        monkeypatch,
        {
            "My-Model": {"input": 1.0, "output": 2.0, "cache_read": 0.1, "cache_write": 1.25},
            "acme-": {"input": 4.0, "output": 8.0},
            "acme-large": {"input": 10.0, "output": 20.0},
            "gpt-4o": {"input": 1.0, "output": 1.0},
        },
    )
    # exact, case-insensitive: 1,000 x 1/M + 2,000 x 0.1/M + 500 x 1.25/M + 100 x 2/M
    #   = 0.001 + 0.0002 + 0.000625 + 0.0002 = 0.002025
    p = call("whatever", "my-model", 3_500, 100, cached=2_000, write=500)
    assert (p.cost_usd, p.source, p.model_ref) == (approx(0.002025), f"override:{path}", "my-model")
    # longest prefix wins; cache fields default to the input rate:
    #   acme-large-2: (1,000 + 1,000 cached) x 10/M + 100 x 20/M = 0.022
    assert call(None, "acme-large-2", 2_000, 100, cached=1_000).cost_usd == approx(0.022)
    #   acme-small: 1,000 x 4/M + 100 x 8/M = 0.0048
    p = call(None, "acme-small", 1_000, 100)
    assert (p.cost_usd, p.model_ref) == (approx(0.0048), "acme-")
    # overrides win over the library: 1,000 x 1/M + 100 x 1/M = 0.0011
    assert call("openai", "gpt-4o", 1_000, 100).cost_usd == approx(0.0011)
    # no override match -> the library still prices it
    assert call("openai", "gpt-4.1", 1_000_000, 0).source == LIBRARY_SOURCE


def test_override_reloads_when_the_file_changes(tmp_path, monkeypatch):
    path = _override(tmp_path, monkeypatch, {"m": {"input": 1.0, "output": 1.0}})
    assert call(None, "m", 1_000_000, 0).cost_usd == approx(1.0)
    with open(path, "w") as f:
        json.dump({"m": {"input": 3.0, "output": 1.0}}, f)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a distinct mtime
    assert call(None, "m", 1_000_000, 0).cost_usd == approx(3.0)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected an object"),
        ('{"m": 3}', "model 'm'"),
        ('{"m": {"input": 1}}', "'input' and 'output' are required"),
        ('{"m": {"input": -1, "output": 1}}', "'input' must be a number >= 0"),
        ('{"m": {"input": "1", "output": 1}}', "'input' must be a number >= 0"),
        ('{"m": {"input": 1, "output": true}}', "'output' must be a number >= 0"),
        ('{"m": {"input": 1, "output": 1, "cached": 0.1}}', "unknown field 'cached'"),
    ],
)
def test_malformed_override_names_file_and_problem(tmp_path, monkeypatch, content, complaint):
    path = _override(tmp_path, monkeypatch, content, name="bad.json")
    for attempt in (lambda: load_overrides(path), lambda: call(None, "m", 1, 1)):
        with pytest.raises(ValueError) as err:
            attempt()
        message = str(err.value)
        assert path in message and complaint in message and "\n" not in message


def test_missing_override_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPROF_PRICING", str(tmp_path / "nope.json"))
    with pytest.raises(ValueError, match="nope.json: cannot read it"):
        call(None, "m", 1, 1)


# --- agreement with genai-prices and invariants --------------------------------------

MODELS = [  # (provider, model), including tiered and cache-write-priced entries
    ("openai", "gpt-4o"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-opus-4-5"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
]
counts = st.integers(min_value=0, max_value=400_000)


@st.composite
def usages(draw):
    """Well-formed llmprof usages: cache reads + writes <= prompt, reasoning <= completion."""
    prompt = draw(counts)
    cached = draw(st.integers(0, prompt))
    write = draw(st.integers(0, prompt - cached))
    completion = draw(counts)
    return {
        "prompt": prompt,
        "cached": cached,
        "write": write,
        "write_1h": draw(st.integers(0, write)),
        "completion": completion,
        "reasoning": draw(st.integers(0, completion)),
    }


def _ours(provider, model, u):
    return call(
        provider,
        model,
        u["prompt"],
        u["completion"],
        u["cached"],
        u["write"],
        u["reasoning"],
        cache_write_1h_tokens=u["write_1h"],
    )


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MODELS), usages())
def test_matches_genai_prices_calc_price(model, u):
    # An independent mapping onto genai-prices' Usage, where input_tokens is the total
    # and cache reads/writes are parts of it, priced by the library's own calc_price.
    usage = genai_prices.Usage(
        input_tokens=u["prompt"],
        cache_read_tokens=u["cached"],
        cache_write_tokens=u["write"],
        cache_write_1h_tokens=u["write_1h"],
        output_tokens=u["completion"],
    )
    when = datetime.fromtimestamp(TS, UTC)
    pid, name = model
    ref = genai_prices.calc_price(usage, name, provider_id=pid, genai_request_timestamp=when)
    # abs: our parts are each rounded to 9 decimals before summing
    assert _ours(*model, u).cost_usd == pytest.approx(float(ref.total_price), rel=1e-9, abs=5e-9)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MODELS), usages())
def test_invariants(model, u):
    p = _ours(*model, u)
    assert p.priced and p.cost_usd >= 0
    assert sum(p.parts.values()) == pytest.approx(p.cost_usd, abs=1e-12)
    # Cache reads (billed at <= the input rate for all these models) never raise the
    # cost above billing those tokens as uncached input; the tier is unchanged since
    # the total input is the same.
    assert p.cost_usd <= _ours(*model, {**u, "cached": 0}).cost_usd + 1e-9
    # Where writes carry no premium (no cache-write price), the whole prompt as
    # uncached input plus output is an upper bound.
    if model[0] in ("openai", "google"):
        plain = {**u, "cached": 0, "write": 0, "write_1h": 0}
        assert p.cost_usd <= _ours(*model, plain).cost_usd + 1e-9


def test_fast_after_warm_up():
    def once():
        call("anthropic", "claude-sonnet-4-5-20250929", 50_000, 1_500, 40_000, 8_000, 0)

    once()
    n = 2_000
    start = time.perf_counter()
    for _ in range(n):
        once()
    per_call = (time.perf_counter() - start) / n
    assert per_call < 200e-6  # typically ~10 µs; loose so a busy CI box does not flake
