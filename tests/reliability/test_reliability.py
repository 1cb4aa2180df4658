"""The reliability and security matrix (cases.py), one test per case.

`make test` runs the fast cases; the slow ones (4K, an hour of 1080p, 200 videos through the daemon) are marked
``slow`` and run with `make reliability`, which also prints the table and writes reliability.json.
"""

from __future__ import annotations

import pytest
from cases import CASES, Bench, ordered, run_case, table

OUTCOMES: list = []  # what each case did, for the table conftest.py prints


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    import os

    saved = {k: os.environ.get(k) for k in ("VIDINTEL_HOME", "DAGSTER_HOME")}
    b = Bench(tmp_path_factory.mktemp("reliability"))
    yield b
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.parametrize(
    "name", [pytest.param(c.name, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in ordered()]
)
def test_case(bench, name):
    out = run_case(bench, CASES[name])
    OUTCOMES.append(out)
    assert out.ok, (out.happened, out.lost)
    assert out.lost == "nothing"


def test_every_case_of_the_issue_is_in_the_matrix():
    groups = {c.group for c in CASES.values()}
    assert groups == {"bad input", "fault", "load", "security"}
    assert len(CASES) >= 25 and table([]).startswith("| case |")
