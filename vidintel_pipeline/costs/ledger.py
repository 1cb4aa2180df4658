"""The cost ledger: what each plugin actually spent, per run, video and project, persisted in SQLite.

One row per (run, asset, video, plugin): a retried step overwrites its own row instead of counting twice.
Totals survive restarts and are what budget guards and the per-project cost report read.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Optional

SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    run_id TEXT NOT NULL,
    asset TEXT NOT NULL,
    project_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    usd REAL NOT NULL,
    media_seconds REAL NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (run_id, asset, project_id, video_id, plugin)
);
CREATE INDEX IF NOT EXISTS spend_project ON spend(project_id, video_id);
"""


class CostLedger:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def record(
        self,
        *,
        run_id: str,
        asset: str,
        project_id: str,
        video_id: str,
        plugin: str,
        usd: float,
        media_seconds: float,
        cached: bool = False,
    ) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO spend VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    asset,
                    project_id,
                    video_id,
                    plugin,
                    float(usd),
                    float(media_seconds),
                    int(cached),
                    time.time(),
                ),
            )

    def get_total_cost(self, video_id: Optional[str] = None, project_id: Optional[str] = None) -> float:
        where, args = _where(project_id, video_id)
        with closing(self._connect()) as db:
            (total,) = db.execute(f"SELECT COALESCE(SUM(usd), 0) FROM spend {where}", args).fetchone()
        return round(total, 6)

    def by_plugin(self, project_id: Optional[str] = None, video_id: Optional[str] = None) -> dict[str, float]:
        where, args = _where(project_id, video_id)
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT plugin, SUM(usd) FROM spend {where} GROUP BY plugin ORDER BY plugin", args
            ).fetchall()
        return {p: round(u, 6) for p, u in rows}

    def projects(self) -> dict[str, dict]:
        """Per project: total USD, videos, media seconds, and USD by plugin."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT project_id, plugin, SUM(usd), COUNT(DISTINCT video_id) FROM spend GROUP BY project_id, plugin"
            ).fetchall()
            vids = dict(
                db.execute("SELECT project_id, COUNT(DISTINCT video_id) FROM spend GROUP BY project_id").fetchall()
            )
        out: dict[str, dict] = {}
        for project, plugin, usd, _ in rows:
            p = out.setdefault(project, {"total_usd": 0.0, "videos": vids.get(project, 0), "by_plugin": {}})
            p["by_plugin"][plugin] = round(usd, 6)
            p["total_usd"] = round(p["total_usd"] + usd, 6)
        return out


def _where(project_id: Optional[str], video_id: Optional[str]) -> tuple[str, tuple]:
    clauses, args = [], []
    if project_id is not None:
        clauses.append("project_id = ?")
        args.append(project_id)
    if video_id is not None:
        clauses.append("video_id = ?")
        args.append(video_id)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(args)
