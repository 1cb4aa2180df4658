"""Probe, stream-copy chunking, audio extraction, decoding: real ffmpeg and PyAV on rendered media."""

import hashlib
import wave

import av
import pytest

from vidintel_pipeline.media import MediaError, probe
from vidintel_pipeline.media.audio import extract_audio
from vidintel_pipeline.media.chunking import cut_chunks, keyframe_times, plan_chunks
from vidintel_pipeline.media.decode import iter_frames
from vidintel_pipeline.media.ffmpeg import run_ffmpeg


def test_probe(demo_video):
    path, truth = demo_video
    info = probe(path)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (640, 360)
    assert info.fps == pytest.approx(25)
    assert info.duration_s == pytest.approx(truth.duration_s, abs=0.1)
    assert info.video_codec == "h264" and info.rotation == 0


def test_probe_honours_rotation(tmp_path, demo_video):
    rotated = tmp_path / "rotated.mp4"
    run_ffmpeg(
        ["-display_rotation", "90", "-i", str(demo_video[0]), "-t", "1", "-c", "copy", str(rotated)], what="rotate"
    )
    info = probe(rotated)
    assert info.rotation in (90, 270)
    assert info.display_size == (360, 640)
    first = next(iter_frames(rotated))
    assert first.width < first.height  # frames come out upright, as a viewer sees them


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty"),
        (b"this is not a video at all\n" * 50, "not a readable video"),
    ],
)
def test_probe_rejects_garbage_with_a_clear_error(tmp_path, content, reason):
    bad = tmp_path / "broken clip.mp4"
    bad.write_bytes(content)
    with pytest.raises(MediaError, match=reason) as exc:
        probe(bad)
    assert "broken clip.mp4" in str(exc.value)


def test_probe_rejects_truncated_mp4(tmp_path, demo_video):
    data = demo_video[0].read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 3])  # faststart: moov is at the front, most media data is missing
    no_moov = tmp_path / "nomoov.mp4"
    no_moov.write_bytes(data[len(data) // 2 :])
    with pytest.raises(MediaError, match=no_moov.name):
        probe(no_moov)
    try:  # a file cut short may still open; if so it must at least report a sane duration or fail clearly
        assert probe(cut).duration_s > 0
    except MediaError as exc:
        assert cut.name in str(exc)


def _packet_digest(paths):
    h = hashlib.sha256()
    n = 0
    for p in paths:
        with av.open(str(p)) as c:
            for pkt in c.demux(c.streams.video[0]):
                if pkt.size:
                    h.update(bytes(pkt))
                    n += 1
    return h.hexdigest(), n


def _video_frames(path):
    with av.open(str(path)) as c:
        return sum(1 for pkt in c.demux(c.streams.video[0]) if pkt.size)


def test_chunks_are_stream_copies_within_the_limit(tmp_path, demo_video):
    path, truth = demo_video
    # re-mux with a keyframe every second so a 5 s limit can be honoured by stream copy
    src = tmp_path / "gop25.mp4"
    run_ffmpeg(
        [
            "-i",
            str(path),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-c:a",
            "copy",
            str(src),
        ],
        what="re-encode",
    )
    plans = plan_chunks(keyframe_times(src), probe(src).duration_s, 5.0)
    assert all(p.duration_s <= 5.0 + 1e-6 for p in plans) and not any(p.over_limit for p in plans)
    assert plans[0].start_s == 0 and plans[-1].end_s == pytest.approx(truth.duration_s, abs=0.1)
    files = cut_chunks(src, plans, tmp_path, ".mp4")
    assert len(files) == len(plans) >= 5
    for f, p in zip(files, plans, strict=False):
        assert _video_frames(f) / 25 == pytest.approx(p.duration_s, abs=0.041)  # the video is cut on the frame
        assert probe(f).duration_s == pytest.approx(p.duration_s, abs=0.15)  # audio packets may run a bit over
    # no re-encode: the chunks hold exactly the source's compressed video packets
    assert _packet_digest(files) == _packet_digest([src])


def test_long_gop_is_flagged_not_reencoded():
    plans = plan_chunks([0.0, 10.0, 20.0], 25.0, 4.0)
    assert [(p.start_s, p.end_s, p.over_limit) for p in plans] == [
        (0.0, 10.0, True),
        (10.0, 20.0, True),
        (20.0, 25.0, True),
    ]
    # where keyframes allow, chunks stay within the limit and end on the last keyframe that fits
    plans = plan_chunks([0.0, 2.0, 4.0, 6.0, 8.0], 9.0, 5.0)
    assert [(p.start_s, p.end_s, p.over_limit) for p in plans] == [(0.0, 4.0, False), (4.0, 9.0, False)]


def test_audio_is_16k_mono(tmp_path, demo_video):
    out = extract_audio(demo_video[0], tmp_path / "a.wav")
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() / 16000 == pytest.approx(demo_video[1].duration_s, abs=0.1)


def test_decode_once_yields_every_frame(demo_video):
    path, truth = demo_video
    frames = list(iter_frames(path))
    assert len(frames) == round(truth.duration_s * truth.fps)
    assert frames[0].time_s == 0 and frames[1].time_s == pytest.approx(0.04)
    assert frames[0].y.shape == (180, 320) and frames[0].u.shape == (90, 160)
