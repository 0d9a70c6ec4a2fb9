"""Fixtures for end-to-end tests that drive a real mitmdump subprocess.

* ``fake_upstream`` (session): a started ``FakeUpstream`` (tests/support/fake_upstream.py).
* ``upstream`` (function): the same object with its recorded requests cleared.
* ``proxy_factory`` (function): ``proxy_factory(scripts=(), env=None, extra_args=()) ->
  MitmdumpProcess``; starts mitmdump with tests/support/redirect.py FIRST, then ``scripts``,
  with LLMPROF_TEST_UPSTREAM pointing at the fake upstream plus ``env`` (e.g. LLMPROF_HOME,
  LLMPROF_DB_URL). Every proxy it started is stopped at teardown.

Every test under tests/e2e gets the ``e2e`` marker (``-m "not e2e"`` skips them).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.support.fake_upstream import FakeUpstream  # noqa: E402
from tests.support.proxy import REDIRECT_SCRIPT, MitmdumpProcess, start_mitmdump  # noqa: E402

_E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def fake_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstream]:
    server = FakeUpstream(tmp_path_factory.mktemp("fake-upstream")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    fake_upstream.clear()
    return fake_upstream


@pytest.fixture
def proxy_factory(fake_upstream: FakeUpstream, tmp_path: Path):
    started: list[MitmdumpProcess] = []

    def make(
        scripts: Sequence[str | Path] = (),
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> MitmdumpProcess:
        proc = start_mitmdump(
            tmp_path / f"proxy{len(started)}",
            scripts=[REDIRECT_SCRIPT, *scripts],
            extra_args=extra_args,
            env={"LLMPROF_TEST_UPSTREAM": fake_upstream.address, **(env or {})},
        )
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()
