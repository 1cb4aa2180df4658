"""The matrix's table at the end of a run (`make reliability`), and its JSON with ``--reliability-json PATH``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    import test_reliability
    from cases import table

    outcomes = test_reliability.OUTCOMES
    if not outcomes:
        return
    terminalreporter.write_sep("=", "reliability and security matrix")
    terminalreporter.write_line(table(outcomes))
    terminalreporter.write_line(f"{sum(o.ok for o in outcomes)}/{len(outcomes)} cases handled with nothing lost")
    path = config.getoption("--reliability-json")
    if path:
        Path(path).write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
