"""Search a project's videos: full text (SQLite FTS5, BM25) and meaning (MiniLM embeddings), no extra service.

The index is a cache of the memory documents. Each video's entries (transcript segments, markers) are
kept with the SHA-256 of the memory they came from; :func:`sync` re-indexes only videos whose memory
changed and drops videos whose memory is gone, so it is cheap after each partition. The index file is
``{output}/projects/{p}/memories/index.sqlite``, downloaded (or copied), updated and uploaded whole (it
is small: text and 384 floats per entry); the upload is atomic, so a reader never sees half an index.

Two runs of one project updating at once would each start from the same index and the second upload
would drop the first's video (a lost update). Every update therefore holds the project's index lock
(:mod:`vidintel_pipeline.storage.locks`) from download to upload. That lock orders the processes of one
machine; writers on different machines (S3) can still lose an update, never corrupt the index, and the
next sync of the project (any run, or ``vidintel search``) puts the missing video back.

A query is answered twice and the scores combined: BM25 over the words (any of the query's words, best
when all match) and cosine similarity of the query's embedding to each entry's. A result is a
:class:`Moment`: video, start, end, what matched and why, and the keyframe showing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from vidintel_pipeline.plugin_api.contracts import MemoryDocument
from vidintel_pipeline.storage.layout import SEARCH_INDEX, memories_prefix, memory_keys, search_index_key, validate_id
from vidintel_pipeline.storage.locks import held, index_lock_name
from vidintel_pipeline.storage.stores import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (video_id TEXT PRIMARY KEY, memory_sha TEXT NOT NULL, entries INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY, video_id TEXT NOT NULL, kind TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL,
    text TEXT NOT NULL, speaker TEXT, keyframe_uri TEXT, embedding BLOB);
CREATE INDEX IF NOT EXISTS entries_video ON entries(video_id);
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(text, content='entries', content_rowid='id');
"""


@dataclass
class Moment:
    video_id: str
    start_s: float
    end_s: float
    kind: str  # transcript | marker
    text: str
    score: float
    why: str
    keyframe_uri: Optional[str] = None
    speaker: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def index_key(project_id: str) -> str:
    validate_id(project_id, "project id")
    return search_index_key(project_id)


def entries_of(memory: MemoryDocument) -> list[dict[str, Any]]:
    """What a video contributes to the index: one entry per transcript segment and per marker."""
    frames = sorted(memory.keyframes, key=lambda k: k.time_s)

    def keyframe(start: float, end: float) -> Optional[str]:
        inside = [k for k in frames if start - 1e-3 <= k.time_s <= end + 1e-3]
        if inside:
            return inside[len(inside) // 2].uri
        before = [k for k in frames if k.time_s <= start]  # the shot's keyframe shows what was on screen
        return (before[-1] if before else frames[0]).uri if frames else None

    out = []
    for s in memory.transcript.segments:
        if s.text.strip():
            out.append(
                {
                    "kind": "transcript",
                    "start_s": s.start_s,
                    "end_s": s.end_s,
                    "text": s.text.strip(),
                    "speaker": s.speaker,
                    "keyframe_uri": keyframe(s.start_s, s.end_s),
                }
            )
    for m in memory.markers:
        words = f"{m.label.replace('_', ' ')} {m.type.replace('_', ' ')}"
        extra = m.attributes.get("text") or m.attributes.get("description")
        out.append(
            {
                "kind": "marker",
                "start_s": m.start_s,
                "end_s": m.end_s,
                "text": f"{words}: {extra}" if extra else words,
                "speaker": None,
                "keyframe_uri": keyframe(m.start_s, m.end_s),
            }
        )
    return out


class SearchIndex:
    def __init__(self, path: str | os.PathLike[str], embedder: Any = None):
        self.path = str(path)
        self.db = sqlite3.connect(self.path)
        self.db.executescript(SCHEMA)
        self.embedder = embedder

    def close(self) -> None:
        self.db.close()

    # writing ------------------------------------------------------------------------------------------
    def indexed(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT video_id, memory_sha FROM videos"))

    def put_video(self, memory: MemoryDocument, memory_sha: str) -> int:
        rows = entries_of(memory)
        vecs = self.embedder.encode([r["text"] for r in rows]) if (self.embedder is not None and rows) else None
        with self.db:
            self._drop(memory.video_id)
            for i, r in enumerate(rows):
                cur = self.db.execute(
                    "INSERT INTO entries(video_id, kind, start_s, end_s, text, speaker, keyframe_uri, "
                    "embedding) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        memory.video_id,
                        r["kind"],
                        r["start_s"],
                        r["end_s"],
                        r["text"],
                        r["speaker"],
                        r["keyframe_uri"],
                        vecs[i].astype(np.float32).tobytes() if vecs is not None else None,
                    ),
                )
                self.db.execute("INSERT INTO entries_fts(rowid, text) VALUES (?, ?)", (cur.lastrowid, r["text"]))
            self.db.execute("INSERT INTO videos VALUES (?,?,?)", (memory.video_id, memory_sha, len(rows)))
        return len(rows)

    def drop_video(self, video_id: str) -> None:
        with self.db:
            self._drop(video_id)

    def _drop(self, video_id: str) -> None:
        for rowid, text in self.db.execute("SELECT id, text FROM entries WHERE video_id = ?", (video_id,)).fetchall():
            self.db.execute("INSERT INTO entries_fts(entries_fts, rowid, text) VALUES ('delete', ?, ?)", (rowid, text))
        self.db.execute("DELETE FROM entries WHERE video_id = ?", (video_id,))
        self.db.execute("DELETE FROM videos WHERE video_id = ?", (video_id,))

    # reading ------------------------------------------------------------------------------------------
    def search(self, query: str, limit: int = 10, mode: str = "hybrid", min_similarity: float = 0.3) -> list[Moment]:
        if mode not in ("hybrid", "text", "semantic"):
            raise ValueError("mode must be hybrid, text or semantic")
        terms = [t for t in re.findall(r"\w+", query.lower()) if len(t) > 1]
        scores: dict[int, float] = {}
        why: dict[int, list[str]] = {}
        if mode in ("hybrid", "text") and terms:
            match = " OR ".join(f'"{t}"' for t in terms)
            hits = self.db.execute(
                "SELECT e.id, -bm25(entries_fts), e.text FROM entries_fts JOIN entries e ON e.id = entries_fts.rowid "
                "WHERE entries_fts MATCH ?",
                (match,),
            ).fetchall()
            best = max((s for _, s, _ in hits), default=0.0) or 1.0
            for rowid, s, text in hits:
                text = text.lower()
                found = [t for t in terms if re.search(rf"\b{re.escape(t)}", text)]
                scores[rowid] = scores.get(rowid, 0.0) + 0.5 * s / best + 0.5 * len(found) / len(terms)
                why.setdefault(rowid, []).append("words: " + ", ".join(found))
        if mode in ("hybrid", "semantic") and self.embedder is not None:
            rows = self.db.execute("SELECT id, embedding FROM entries WHERE embedding IS NOT NULL").fetchall()
            if rows:
                q = self.embedder.encode([query])[0]
                mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
                sims = mat @ q
                for (rowid, _), sim in zip(rows, sims, strict=False):
                    if sim >= min_similarity:
                        scores[rowid] = scores.get(rowid, 0.0) + float(sim)
                        why.setdefault(rowid, []).append(f"meaning: {sim:.2f} similar")
        top = sorted(scores.items(), key=lambda kv: -kv[1])[:limit]
        out = []
        for rowid, score in top:
            v, kind, a, b, text, spk, kf = self.db.execute(
                "SELECT video_id, kind, start_s, end_s, text, speaker, keyframe_uri FROM entries WHERE id = ?", (rowid,)
            ).fetchone()
            out.append(Moment(v, a, b, kind, text, round(score, 4), "; ".join(why[rowid]), kf, spk))
        return out


@contextmanager
def opened(output: Store, project_id: str, embedder: Any = None) -> Iterator[SearchIndex]:
    """The project's index as a local SQLite file (downloaded once, new if there is none yet)."""
    key = index_key(project_id)
    with tempfile.TemporaryDirectory(prefix="vidintel-index-") as tmp:
        local = Path(tmp) / SEARCH_INDEX
        if output.exists(key):
            local.write_bytes(output.get_bytes(key))
        idx = SearchIndex(local, embedder)
        try:
            yield idx
        finally:
            idx.close()


def sync_index(idx: SearchIndex, output: Store, project_id: str) -> dict[str, Any]:
    """Bring an opened index up to date with the project's memories, uploading it if anything changed."""
    key = index_key(project_id)
    have = idx.indexed()
    memories = memory_keys(output.list(memories_prefix(project_id)), project_id)
    added, unchanged = [], 0
    for video_id, mkey in sorted(memories.items()):
        raw = output.get_bytes(mkey)
        sha = hashlib.sha256(raw).hexdigest()
        if have.get(video_id) == sha:
            unchanged += 1
            continue
        idx.put_video(MemoryDocument.model_validate(json.loads(raw)), sha)
        added.append(video_id)
    removed = sorted(set(have) - set(memories))
    for video_id in removed:
        idx.drop_video(video_id)
    if added or removed or not output.exists(key):
        output.put_file(key, idx.path)
    return {
        "index_uri": output.uri(key),
        "reindexed": added,
        "removed": removed,
        "unchanged": unchanged,
        "videos": len(memories),
        "entries": idx.db.execute("SELECT count(*) FROM entries").fetchone()[0],
        "semantic_entries": idx.db.execute("SELECT count(*) FROM entries WHERE embedding IS NOT NULL").fetchone()[0],
    }


def sync(output: Store, project_id: str, embedder: Any = None) -> dict[str, Any]:
    """Bring the project's index up to date with its memories; returns what changed."""
    with (
        held(index_lock_name(project_id), "search index update", wait=True),
        opened(output, project_id, embedder) as idx,
    ):
        return sync_index(idx, output, project_id)


def search(
    output: Store,
    project_id: str,
    query: str,
    *,
    limit: int = 10,
    mode: str = "hybrid",
    embedder: Any = None,
    refresh: bool = False,
) -> list[Moment]:
    """Moments matching ``query``; ``refresh`` first catches up with memories written since the last sync."""
    if not refresh:  # read only: the index is replaced atomically, never written in place
        with opened(output, project_id, embedder) as idx:
            return idx.search(query, limit=limit, mode=mode)
    with (
        held(index_lock_name(project_id), "search index update", wait=True),
        opened(output, project_id, embedder) as idx,
    ):
        sync_index(idx, output, project_id)
        return idx.search(query, limit=limit, mode=mode)
