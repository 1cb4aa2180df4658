"""Selection, fallback, merge, cost rules, ledger, budget guard and result cache."""

import json
import textwrap
import time

import dagster as dg
import pytest

from vidintel_pipeline.costs.estimate import estimate
from vidintel_pipeline.costs.ledger import CostLedger
from vidintel_pipeline.costs.pricing import BillingRule, chunk_durations, price_book
from vidintel_pipeline.engine.runner import RunPolicy, analyze_video, merge_markers
from vidintel_pipeline.errors import UserError
from vidintel_pipeline.plugin_api.contracts import AnalysisConfig, ChunkInfo, PluginError, TemporalMarker
from vidintel_pipeline.plugin_api.registry import PluginRegistry
from vidintel_pipeline.runtime import in_process
from vidintel_pipeline.runtime.instance import get_instance

HEADER = "from vidintel_pipeline.plugin_api.contracts import *\nimport asyncio, os, json\n"


def plugin_src(name, *, events=("shot_detection",), cost=0.0, max_chunk=None, accuracy=None, body="return []"):
    acc = f", 'accuracy': {accuracy!r}, 'accuracy_source': 'test figures'" if accuracy else ""
    return (
        HEADER
        + textwrap.dedent(f"""
    class P_{name}(BaseTemporalPlugin):
        def get_plugin_info(self):
            return {{'plugin_name': '{name}', 'plugin_version': '1.0.0', 'supported_events': {list(events)!r},
                    'cost_per_minute': {cost}, 'max_chunk_duration': {max_chunk!r}{acc}}}

        async def detect_markers(self, chunk, config):
    """)
        + textwrap.indent(textwrap.dedent(body), " " * 8)
        + "\n"
    )


@pytest.fixture
def folder(tmp_path):
    f = tmp_path / "plugins"
    f.mkdir()
    return f


def _registry(folder, **plugins):
    for name, src in plugins.items():
        (folder / f"{name}.py").write_text(src)
    reg = PluginRegistry()
    reg.discover_plugins(folder)
    assert reg.errors == [], reg.errors
    return reg


# selection -----------------------------------------------------------------------------------------
def test_selection_by_features_cost_chunk_limit_and_accuracy(folder):
    reg = _registry(
        folder,
        cheap=plugin_src("cheap", cost=0.01, max_chunk=30, accuracy={"shot_detection": 0.80}),
        premium=plugin_src("premium", cost=0.50, max_chunk=20, accuracy={"shot_detection": 0.97}),
        labels=plugin_src("labels", events=("object_appearance",), cost=0.10, accuracy={"object_appearance": 0.9}),
    )
    assert reg.select_plugin(["shot_detection"]).name == "premium"  # most accurate
    assert reg.select_plugin(["shot_detection"], preferred_cost=0.001).name == "cheap"  # $/s budget
    assert reg.select_plugin(["shot_detection"], chunk_duration=25).name == "cheap"  # premium caps at 20 s
    assert reg.select_optimal_plugin(0.85, 1.0, ["shot_detection"]).name == "premium"
    assert reg.select_optimal_plugin(0.75, 1.0, ["shot_detection"]).name == "cheap"  # cheapest good enough
    assert reg.select_optimal_plugin(0.85, 0.2).name == "labels"  # any capability
    with pytest.raises(PluginError, match="no plugin reaches accuracy 0.99"):
        reg.select_optimal_plugin(0.99, 1.0, ["shot_detection"])
    with pytest.raises(PluginError, match="no plugin offers"):
        reg.select_plugin(["shot_detection", "object_appearance"])
    assert [p.name for p in reg.get_by_capability("object_appearance")] == [
        "labels"
    ]  # instances, as the seed uses them


# fallback, retries, timeouts, validation -----------------------------------------------------------
TICK = """
out, t = [], chunk.start_s
while t < chunk.end_s:
    out.append(TemporalMarker(type='custom_prompt', start_s=t, end_s=t, label='tick', confidence=0.9, plugin='{name}'))
    t += 2.0
return out
"""


def _source(path="unused.mp4", end=10.0):
    return ChunkInfo(project_id="p", video_id="v", path=path, start_s=0.0, end_s=end)


def _chunks(end=10.0, size=5.0):
    return [
        ChunkInfo(project_id="p", video_id="v", index=i, path="unused.mp4", start_s=s, end_s=min(end, s + size))
        for i, s in enumerate([x * size for x in range(int(end // size))])
    ]


def test_fallback_on_error_rate_limit_and_timeout(folder, tmp_path):
    counter = tmp_path / "flaky.count"
    reg = _registry(
        folder,
        ticker=plugin_src("ticker", events=("custom_prompt",), body=TICK.format(name="ticker")),
        flaky=plugin_src(
            "flaky",
            events=("custom_prompt",),
            body=f"""
            p = {str(counter)!r}
            n = int(open(p).read()) if os.path.exists(p) else 0
            open(p, 'w').write(str(n + 1))
            if n < 2:
                raise RateLimitError('slow down', plugin='flaky')
            return [TemporalMarker(type='custom_prompt', start_s=1, end_s=1, label='flaky', confidence=1,
            plugin='flaky')]
        """,
        ),
        broken=plugin_src(
            "broken", events=("custom_prompt",), body="raise PluginError('provider outage', plugin='broken')"
        ),
        hangs=plugin_src("hangs", events=("custom_prompt",), body="await asyncio.sleep(60)\nreturn []"),
        malformed=plugin_src(
            "malformed",
            events=("custom_prompt",),
            body="""
            return [TemporalMarker(type='custom_prompt', start_s=50, end_s=60, label='x', confidence=1,
            plugin='malformed')]
        """,
        ),
    )
    policy = RunPolicy(
        timeout_s=0.3,
        max_retries=2,
        retry_base_delay_s=0.01,
        fallbacks={"broken": ["ticker"], "hangs": ["broken", "ticker"]},
    )
    t0 = time.perf_counter()
    result = analyze_video(
        source=_source(),
        chunks=_chunks(),
        config=AnalysisConfig(),
        make_plugin=reg.get_plugin,
        policy=policy,
        plugins=[reg.get_plugin(n) for n in ("flaky", "broken", "hangs", "malformed")],
    )
    assert time.perf_counter() - t0 < 5
    runs = [(r.plugin, r.status, r.fallback_for, r.attempts) for r in result.runs]
    assert ("flaky", "ok", None, 3) in runs  # throttled twice, retried with backoff, succeeded
    assert ("broken", "failed", None, 1) in runs  # permanent error: no retry...
    assert ("ticker", "ok", "broken", 1) in runs  # ...straight to its fallback
    assert ("hangs", "failed", None, 3) in runs  # timed out 3 times (timeouts are retryable)
    assert ("broken", "failed", "hangs", 1) in runs  # the chain goes on past a failing fallback
    assert ("ticker", "ok", "hangs", 1) in runs
    errors = {(r.plugin, r.fallback_for): r.error for r in result.failed}
    assert "provider outage" in errors[("broken", None)] and "timed out" in errors[("hangs", None)]
    assert "lies outside" in errors[("malformed", None)]  # every marker out of range: the plugin failed
    assert not [m for m in result.markers if m.plugin == "malformed"]  # rejected, not written
    ticks = [m for m in result.markers if m.label == "tick"]
    assert len(ticks) == 5 and ticks[0].attributes.get("plugins") is None  # the two fallback runs merged into one set


# merge ------------------------------------------------------------------------------------------------
def _m(start, end, label="cut", plugin="a", conf=0.9, type_="shot_boundary"):
    return TemporalMarker(type=type_, start_s=start, end_s=end, label=label, confidence=conf, plugin=plugin)


def test_merge_across_plugins_and_chunk_boundaries():
    merged = merge_markers(
        [
            _m(3.0, 3.0, plugin="a", conf=0.8),
            _m(3.03, 3.03, plugin="b", conf=0.95),  # one cut, two plugins
            _m(7.0, 7.0, plugin="a"),  # another cut
            _m(0.0, 5.0, "face", "faces", type_="object_appearance"),
            _m(5.0, 8.0, "face", "faces", type_="object_appearance"),  # split at a chunk boundary
            _m(4.0, 4.5, "dissolve", "a"),  # other label: kept apart
        ]
    )
    cuts = [m for m in merged if m.label == "cut"]
    assert [(c.start_s, c.end_s) for c in cuts] == [(3.03, 3.03), (7.0, 7.0)]
    assert cuts[0].plugin == "b" and cuts[0].attributes["plugins"] == ["a", "b"] and cuts[0].confidence == 0.95
    faces = [m for m in merged if m.label == "face"]
    assert [(f.start_s, f.end_s) for f in faces] == [(0.0, 8.0)]
    assert len(merged) == 4


def test_chunked_plugin_results_join_across_chunks(folder):
    reg = _registry(
        folder,
        spans=plugin_src(
            "spans",
            events=("custom_prompt",),
            max_chunk=5,
            body="""
        return [TemporalMarker(type='custom_prompt', start_s=chunk.start_s, end_s=chunk.end_s, label='talking',
                               confidence=0.7, plugin='spans')]
    """,
        ),
    )
    result = analyze_video(
        source=_source(), chunks=_chunks(), config=AnalysisConfig(), plugins=[reg.get_plugin("spans")]
    )
    assert [(m.start_s, m.end_s) for m in result.markers] == [(0.0, 10.0)]
    assert result.runs[0].requests == 2


def test_one_bad_marker_costs_only_itself(folder):
    """A marker half a frame before 0 is clamped, a malformed or far-out one dropped: the rest of the result stays."""
    reg = _registry(
        folder,
        sloppy=plugin_src(
            "sloppy",
            events=("custom_prompt",),
            body="""
        return [
            {'type': 'custom_prompt', 'start_s': chunk.start_s - 0.006667, 'end_s': chunk.start_s + 1, 'label':
            'early', 'confidence': 1, 'plugin': 'sloppy'},
            {'type': 'custom_prompt', 'start_s': 'soon', 'end_s': 1, 'label': 'garbage', 'confidence': 1, 'plugin':
            'sloppy'},
            {'type': 'custom_prompt', 'start_s': chunk.end_s + 30, 'end_s': chunk.end_s + 31, 'label': 'far',
            'confidence': 1, 'plugin': 'sloppy'},
            {'type': 'custom_prompt', 'start_s': chunk.start_s + 2, 'end_s': chunk.end_s + 0.01, 'label': 'late',
            'confidence': 1, 'plugin': 'sloppy'},
        ]
    """,
        ),
    )
    result = analyze_video(
        source=_source(), chunks=_chunks(), config=AnalysisConfig(), plugins=[reg.get_plugin("sloppy")]
    )
    run = result.runs[0]
    assert run.status == "ok", run.error
    assert (run.clamped, run.dropped) == (2, 2)
    assert any("soon" in w for w in run.warnings) and any("far@" in w for w in run.warnings)
    spans = sorted((m.label, m.start_s, m.end_s) for m in result.markers)
    assert spans == [("early", 0.0, 1.0), ("late", 2.0, 10.0)]


def test_declared_event_types_pass_through_and_undeclared_ones_are_named(folder):
    """`supported_events` is open: a declared type (logo_appearance) goes all the way to the exports; an
    undeclared one (speaker_change) is dropped alone, naming the plugin and the type."""
    from vidintel_pipeline.outputs.exports import render
    from vidintel_pipeline.plugin_api.contracts import MemoryDocument

    reg = _registry(
        folder,
        logos=plugin_src(
            "logos",
            events=("logo_appearance",),
            body="""
        return [TemporalMarker(type='logo_appearance', start_s=1, end_s=3, label='acme logo', confidence=0.9,
        plugin='logos'),
                TemporalMarker(type='speaker_change', start_s=4, end_s=4, label='b', confidence=0.9, plugin='logos')]
    """,
        ),
    )
    result = analyze_video(
        source=_source(), chunks=_chunks(), config=AnalysisConfig(), plugins=[reg.get_plugin("logos")]
    )
    run = result.runs[0]
    assert run.status == "ok" and run.dropped == 1
    assert "type 'speaker_change' is neither a core marker type nor in logos's supported_events" in run.warnings[0]
    assert [(m.type, m.label) for m in result.markers] == [("logo_appearance", "acme logo")]
    doc = MemoryDocument(project_id="p", video_id="v", duration_s=10.0, markers=result.markers)
    assert "logo_appearance,acme logo" in render(MemoryDocument.model_validate_json(doc.model_dump_json()), "csv")
    with pytest.raises(Exception, match="pattern"):
        TemporalMarker(type="Not A Type!", start_s=0, end_s=0, label="x", confidence=1, plugin="p")


# cost ---------------------------------------------------------------------------------------------------
def test_price_book_rules():
    book = price_book()
    for name, rule in book.items():
        assert rule.source.startswith(("https://", "seed")), name
    tr = book["aws_transcribe"]
    assert tr.cost(10) == pytest.approx(15 / 60 * 0.024)  # 15 s minimum per request
    assert tr.cost(61.5) == pytest.approx(62 / 60 * 0.024)  # per-second billing, rounded up
    assert sum(tr.cost(d) for d in chunk_durations(30, 10)) == pytest.approx(3 * 15 / 60 * 0.024)  # minimum per chunk
    rk = book["aws_rekognition"]
    assert rk.cost(61) == pytest.approx(2 * (0.05 + 0.05 + 0.10))  # each started minute, per feature
    assert rk.cost(30, features=["shot_detection"]) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="no price for features"):
        rk.cost(30, features=["telepathy"])
    oa = book["openai_transcribe"]
    assert oa.cost(90) == pytest.approx(0.009) and oa.cost(90, model="gpt-4o-mini-transcribe") == pytest.approx(0.0045)
    assert BillingRule(usd_per_minute=0.6).cost(0) == 0.0
    assert chunk_durations(25, 10) == [10, 10, 5] and chunk_durations(5, None) == [5]


def test_price_book_rules_apply_to_their_own_class_only(folder):
    """A user plugin that reuses the name aws_rekognition is billed at its own declared price, never at
    Rekognition's; the built-in class (and a subclass of it) keeps the provider's per-started-minute rule."""
    from vidintel.plugins.aws_rekognition import AWSRekognitionPlugin

    reg = _registry(folder, aws_rekognition=plugin_src("aws_rekognition", cost=1.0))
    impostor = reg.get_plugin("aws_rekognition")
    assert impostor.estimate_cost(60) == pytest.approx(1.0) and impostor.estimate_cost(61) == pytest.approx(61 / 60)

    class Tuned(AWSRekognitionPlugin):
        pass

    for real in (AWSRekognitionPlugin(), Tuned()):
        assert real.estimate_cost(60) == pytest.approx(0.20) and real.estimate_cost(61) == pytest.approx(0.40)

    from vidintel_pipeline.costs.pricing import rule_for

    with pytest.raises(TypeError, match="not the name"):
        rule_for("aws_rekognition")  # a name would price any same-named class; it must not silently give $0


def test_ledger_totals_survive_restart(tmp_path):
    path = tmp_path / "ledger.sqlite"
    led = CostLedger(path)
    led.record(
        run_id="r1", asset="temporal_markers", project_id="acme", video_id="v1", plugin="aws", usd=0.5, media_seconds=60
    )
    led.record(
        run_id="r1", asset="transcript", project_id="acme", video_id="v1", plugin="whisper", usd=0.1, media_seconds=60
    )
    led.record(
        run_id="r2",
        asset="temporal_markers",
        project_id="acme",
        video_id="v2",
        plugin="aws",
        usd=0.25,
        media_seconds=30,
    )
    led.record(
        run_id="r3", asset="temporal_markers", project_id="beta", video_id="v1", plugin="aws", usd=1.0, media_seconds=60
    )
    led.record(
        run_id="r1", asset="temporal_markers", project_id="acme", video_id="v1", plugin="aws", usd=0.5, media_seconds=60
    )  # a retried step
    del led
    again = CostLedger(path)
    assert again.get_total_cost(video_id="v1", project_id="acme") == pytest.approx(0.6)
    assert again.get_total_cost(project_id="acme") == pytest.approx(0.85)
    assert again.get_total_cost() == pytest.approx(1.85)
    assert again.by_plugin(project_id="acme") == {"aws": 0.75, "whisper": 0.1}
    assert again.projects()["beta"] == {"total_usd": 1.0, "videos": 1, "by_plugin": {"aws": 1.0}}


# budget guard and cache, through Dagster -------------------------------------------------------------
PAID = """
calls = os.environ['PAID_CALLS_FILE']
with open(calls, 'a') as fh:
    fh.write(json.dumps({'start': chunk.start_s, 'every': self.options.every_s}) + '\\n')
out, t = [], chunk.start_s
while t < chunk.end_s:
    out.append(TemporalMarker(type='custom_prompt', start_s=t, end_s=t, label='paid', confidence=0.9,
    plugin='paid_ticker'))
    t += self.options.every_s
return out
"""


@pytest.fixture
def paid_plugin(tmp_path, monkeypatch, folder):
    src = plugin_src("paid_ticker", events=("custom_prompt",), cost=1.0, max_chunk=10, body=PAID)
    src = src.replace(
        "class P_paid_ticker(BaseTemporalPlugin):",
        "class O(PluginOptions):\n    every_s: float = 5.0\n\nclass P_paid_ticker(BaseTemporalPlugin):\n    "
        "Options = O",
    )
    (folder / "paid_ticker.py").write_text(src)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("VIDINTEL_PLUGIN_PATH", str(folder))
    monkeypatch.setenv("PAID_CALLS_FILE", str(calls))
    return calls


def _meta(asset):
    ev = get_instance().get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in ev.asset_materialization.metadata.items()}


def _resources(plugins, options=None, **costs):
    return {
        "temporal_plugins": {"config": {"plugins": plugins, "options": options or {}}},
        "transcription": {"config": {"enabled": False}},
        "costs": {"config": costs},
    }


def test_budget_guard_stops_before_spending(home, demo_video, paid_plugin):
    with pytest.raises(UserError, match=r"Budget guard.*max_usd_per_video \$0\.0100.*Nothing was sent"):
        in_process.ingest(
            str(demo_video[0]),
            "acme",
            "v1",
            quiet=True,
            resources_config=_resources(["paid_ticker", "local_shots"], max_usd_per_video=0.01),
        )
    assert not paid_plugin.exists()  # the paid plugin was never called
    assert CostLedger(home / "ledger.sqlite").get_total_cost(project_id="acme") == 0.0


def test_cache_hit_costs_nothing_and_config_change_misses(home, demo_video, paid_plugin):
    path, truth = demo_video
    res = _resources(["paid_ticker", "local_shots"])
    in_process.ingest(str(path), "acme", "v1", quiet=True, resources_config=res)
    first_calls = paid_plugin.read_text().splitlines()
    assert len(first_calls) == 3  # 24.2 s in chunks of at most 10 s
    first = _meta("temporal_markers")
    expected = sum(
        round(1.0 * d / 60, 6)
        for d in (
            c["end_s"] - c["start_s"]
            for c in json.loads((home / "data/ingest/projects/acme/videos/v1/chunks/manifest.json").read_text())[
                "chunks"
            ]
        )
    )
    assert first["cost/usd"] == pytest.approx(expected, abs=1e-4) and first["cost/usd"] > 0.3
    assert first["cost/plugin/paid_ticker"] == first["cost/usd"] and first["cache/hits"] == 0

    in_process.ingest(str(path), "acme", "v1", quiet=True, resources_config=res)  # unchanged: all from cache
    assert paid_plugin.read_text().splitlines() == first_calls  # no plugin call
    second = _meta("temporal_markers")
    assert second["cost/usd"] == 0.0 and second["cache/hits"] == 2
    assert second["frames_decoded"] == 0 and first["frames_decoded"] > 0  # keyframes reused: no decode at all
    assert all(p["cached"] for p in second["plugins"])
    memory_meta = _meta("memory")
    assert memory_meta["cost/project_total_usd"] == pytest.approx(first["cost/usd"], abs=1e-6)
    assert _meta("project_costs")["cost/project/acme"] == pytest.approx(first["cost/usd"], abs=1e-6)

    in_process.ingest(
        str(path),
        "acme",
        "v1",
        quiet=True,  # an option change invalidates only that plugin
        resources_config=_resources(["paid_ticker", "local_shots"], {"paid_ticker": {"every_s": 2.0}}),
    )
    assert len(paid_plugin.read_text().splitlines()) == 6
    third = _meta("temporal_markers")
    cached = {p["plugin"]: p["cached"] for p in third["plugins"]}
    assert cached == {"paid_ticker": False, "local_shots": True}

    est = estimate("acme", None, ["paid_ticker"], None)
    assert est["videos"][0]["by_plugin"]["paid_ticker"] == pytest.approx(truth.duration_s / 60, abs=0.01)
    assert est["videos"][0]["by_plugin"]["faster_whisper"] == 0.0


MINUTE_BILLED = """
class P_minute_billed(BaseTemporalPlugin):
    def get_plugin_info(self):
        return {'plugin_name': 'minute_billed', 'plugin_version': '1.0.0', 'supported_events': ['custom_prompt'],
                'cost_per_minute': 0.2, 'max_chunk_duration': 20.0}

    def estimate_cost(self, duration_seconds):  # each started minute per request, as Rekognition bills
        import math
        return round(math.ceil(duration_seconds / 60 - 1e-9) * 0.2, 6) if duration_seconds > 0 else 0.0

    async def detect_markers(self, chunk, config):
        with open(os.environ['PAID_CALLS_FILE'] + '.minute', 'a') as fh:
            fh.write(json.dumps([chunk.start_s, chunk.end_s, os.path.basename(chunk.path)]) + '\\n')
        return []
"""


def test_each_plugin_billed_on_chunks_cut_for_its_own_limit(home, demo_video, paid_plugin, folder):
    """paid_ticker (10 s chunks, $1/min) and minute_billed (20 s chunks, each started minute $0.20) on a 24.2 s
    video: minute_billed gets two 20 s-set requests ($0.40), not three 10 s ones ($0.60); the estimate, the
    materialization and the ledger agree to the cent."""
    path, truth = demo_video
    (folder / "minute_billed.py").write_text(HEADER + textwrap.dedent(MINUTE_BILLED))
    plugins = ["paid_ticker", "minute_billed", "local_shots"]
    in_process.ingest(str(path), "acme", "v1", quiet=True, resources_config=_resources(plugins))
    manifest = json.loads((home / "data/ingest/projects/acme/videos/v1/chunks/manifest.json").read_text())
    sets = {s["max_chunk_s"]: s["chunks"] for s in manifest["sets"]}
    assert sorted(sets) == [10.0, 20.0] and len(sets[10.0]) == 3 and len(sets[20.0]) == 2
    assert all(c["end_s"] - c["start_s"] <= 20.0 + 1e-6 for c in sets[20.0])
    assert all(c["key"].split("/chunks/")[1].startswith("20s/") for c in sets[20.0])
    calls = [json.loads(line) for line in (paid_plugin.parent / "calls.jsonl.minute").read_text().splitlines()]
    assert sorted((a, b) for a, b, _ in calls) == [(c["start_s"], c["end_s"]) for c in sets[20.0]]
    assert len(paid_plugin.read_text().splitlines()) == 3  # paid_ticker still on its own 10 s chunks

    meta = _meta("temporal_markers")
    assert meta["cost/plugin/minute_billed"] == pytest.approx(0.40, abs=1e-9)
    ticker = sum(round((c["end_s"] - c["start_s"]) / 60, 6) for c in sets[10.0])
    assert meta["cost/plugin/paid_ticker"] == pytest.approx(ticker, abs=1e-6)
    ledger = CostLedger(home / "ledger.sqlite").by_plugin(project_id="acme", video_id="v1")
    est = estimate("acme", "v1", plugins, None)["videos"][0]["by_plugin"]
    for name in ("minute_billed", "paid_ticker", "local_shots"):
        assert round(est[name], 2) == round(meta[f"cost/plugin/{name}"], 2) == round(ledger.get(name, 0.0), 2), name
        assert est[name] == pytest.approx(meta[f"cost/plugin/{name}"], abs=1e-6)


def test_measured_accuracy_replaces_declared_and_says_which_is_which(folder, tmp_path, monkeypatch, caplog):
    """A plugin that claims 0.97 but measured 0.60 is not chosen for 0.85; figures of another version are stale."""
    from vidintel_pipeline.evaluation.measured import write_measured

    monkeypatch.setenv("VIDINTEL_ACCURACY_FILE", str(tmp_path / "accuracy.json"))
    write_measured(
        {
            "premium": {"plugin_version": "1.0.0", "features": {"shot_detection": {"score": 0.6}}, "truth": "t"},
            "cheap": {"plugin_version": "0.9.0", "features": {"shot_detection": {"score": 0.99}}, "truth": "t"},
        }
    )
    reg = _registry(
        folder,
        cheap=plugin_src("cheap", cost=0.01, accuracy={"shot_detection": 0.80}),
        premium=plugin_src("premium", cost=0.50, accuracy={"shot_detection": 0.97}),
        honest=plugin_src("honest", cost=0.50, accuracy={"shot_detection": 0.88}),
    )
    acc = {n: reg.accuracy_of(reg.entries[n].info, ["shot_detection"]) for n in ("cheap", "premium", "honest")}
    assert (acc["premium"].score, acc["premium"].basis) == (0.6, "measured")
    assert (acc["cheap"].score, acc["cheap"].basis) == (0.8, "declared")  # measured on 0.9.0: stale, not used
    with caplog.at_level("INFO", logger="vidintel.registry"):
        chosen = reg.select_optimal_plugin(0.85, 1.0, ["shot_detection"])
    assert chosen.name == "honest" and chosen.selection.declared == ["shot_detection"]
    assert "declared (unmeasured) accuracy" in caplog.text
    with pytest.raises(PluginError, match=r"premium 0.60 \(measured\)"):
        reg.select_optimal_plugin(0.9, 1.0, ["shot_detection"])
    assert reg.select_plugin(["shot_detection"]).name == "honest"  # most accurate once premium is measured
    # at equal cost a measured figure wins over a declared one
    write_measured({"honest": {"plugin_version": "1.0.0", "features": {"shot_detection": {"score": 0.86}}}})
    reg.measured = None
    chosen = reg.select_optimal_plugin(0.5, 1.0, ["shot_detection"], kind=None)
    assert chosen.name == "cheap"  # cheapest still comes first
    reg.entries.pop("cheap")
    chosen = reg.select_optimal_plugin(0.5, 1.0, ["shot_detection"])
    assert chosen.name == "honest" and chosen.selection.basis == "measured"
