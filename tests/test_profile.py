"""The profiler pass: pricing wired to the trace, failed and unknown calls honest."""

from addon.analysis.profile import profile
from storage.trace import Trace


def test_known_model_is_priced_with_its_source():
    # gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output
    t = Trace(
        provider="openai",
        model="gpt-4o-2024-08-06",
        prompt_tokens=10_000,
        cached_tokens=4_000,
        completion_tokens=1_000,
        ts=1_780_000_000,
    )
    assert profile(t) == []
    # 6,000 x 2.50 + 4,000 x 1.25 + 1,000 x 10 = 15,000 + 5,000 + 10,000 = $0.030
    assert abs(t.cost_usd - 0.030) < 1e-12
    assert t.price_source.startswith("genai-prices ") and "gpt-4o" in t.price_source


def test_anthropic_one_hour_writes_cost_more():
    base = dict(
        provider="anthropic",
        model="claude-sonnet-4-5",
        prompt_tokens=10_000,
        cache_write_tokens=8_000,
        cached_tokens=0,
        completion_tokens=0,
        ts=1_780_000_000,
    )
    five_min = Trace(**base, usage_raw={"cache_creation": {"ephemeral_5m_input_tokens": 8000}})
    one_hour = Trace(**base, usage_raw={"cache_creation": {"ephemeral_1h_input_tokens": 8000}})
    profile(five_min), profile(one_hour)
    # sonnet 4.5: input $3/M, 5m write $3.75/M, 1h write $6/M
    assert abs(five_min.cost_usd - (2000 * 3 + 8000 * 3.75) / 1e6) < 1e-12
    assert abs(one_hour.cost_usd - (2000 * 3 + 8000 * 6) / 1e6) < 1e-12


def test_unknown_model_is_unpriced_not_free():
    t = Trace(
        provider="my-gateway.corp", model="house-model-7b", prompt_tokens=10, completion_tokens=5
    )
    profile(t)
    assert t.cost_usd is None


def test_failed_call_without_usage_costs_nothing_and_says_so():
    t = Trace(provider="openai", model="gpt-4o", outcome="http_error", status=429)
    profile(t)
    assert t.cost_usd == 0.0 and t.price_source == "not billed: http_error without usage"
    ok_without_usage = Trace(provider="openai", model="gpt-4o")  # e.g. a stream w/o usage
    profile(ok_without_usage)
    assert ok_without_usage.cost_usd is None


def test_broken_override_file_is_a_problem_not_a_crash(tmp_path, monkeypatch):
    bad = tmp_path / "prices.json"
    bad.write_text("{not json")
    monkeypatch.setenv("LLMPROF_PRICING", str(bad))
    t = Trace(provider="openai", model="gpt-4o", prompt_tokens=1, completion_tokens=1)
    problems = profile(t)
    assert len(problems) == 1 and problems[0].startswith("pricing: ") and str(bad) in problems[0]
    assert t.cost_usd is None
