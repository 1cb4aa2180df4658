"""The fast half of the reliability and security matrix (tests/reliability.py); `make reliability` runs all of it."""

from __future__ import annotations

import pytest
import reliability
from reliability import CASES, Bench, ordered, run_case

FAST = [c.name for c in ordered() if not c.slow]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    import os

    saved = {k: os.environ.get(k) for k in ("VIDINTEL_HOME", "DAGSTER_HOME")}
    b = Bench(tmp_path_factory.mktemp("reliability"))
    yield b
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.parametrize("name", FAST)
def test_case(bench, name):
    out = run_case(bench, CASES[name])
    assert out.ok, (out.happened, out.lost)
    assert out.lost == "nothing"


def test_every_case_of_the_issue_is_in_the_matrix():
    groups = {c.group for c in CASES.values()}
    assert groups == {"bad input", "fault", "load", "security"}
    assert len(CASES) >= 25 and reliability.table([]).startswith("| case |")
