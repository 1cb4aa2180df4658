import os

import pytest

from vidintel_pipeline.storage.layout import InvalidIdError, VideoRef, slugify, validate_id
from vidintel_pipeline.storage.local import LocalStore


@pytest.mark.parametrize(
    "bad", ["../x", "..", "a/b", "/abs", "a b", "a__b", "x\n", "a\x00b", "", "é", "a" * 65, ".hidden", "-x"]
)
def test_hostile_ids_are_rejected(bad):
    with pytest.raises(InvalidIdError):
        validate_id(bad, "project id")


@pytest.mark.parametrize("good", ["acme", "ACME-2024", "video.v2", "a_b-c.d", "x" * 64])
def test_reasonable_ids_pass(good):
    assert validate_id(good) == good


def test_layout_is_the_seeds():
    ref = VideoRef("acme", "clip-1")
    assert ref.partition_key == "acme__clip-1"
    assert VideoRef.from_partition_key("acme__clip-1") == ref
    assert ref.key("chunks", "chunk_00000.mp4") == "projects/acme/videos/clip-1/chunks/chunk_00000.mp4"
    assert ref.memory_key == "projects/acme/memories/clip-1.json"
    with pytest.raises(ValueError):
        ref.key("secrets", "x")
    with pytest.raises(InvalidIdError):
        ref.key("source", "../../other/videos/x/source/a.mp4")


@pytest.mark.parametrize("key", ["acme", "a__b__c", "../x__y", "acme__", "__v"])
def test_bad_partition_keys(key):
    with pytest.raises(InvalidIdError):
        VideoRef.from_partition_key(key)


def test_slugify():
    assert slugify("My Clip (1).MP4") == "my-clip-1"
    assert slugify("über straße.mov") == "uber-strasse"
    assert slugify("Fête du café — été 2026.mp4") == "fete-du-cafe-ete-2026"
    # no ASCII form: a hash of the name keeps two such files apart instead of one replacing the other
    assert validate_id(slugify("会議.mp4")).startswith("video-") and slugify("会議.mp4") != slugify("講演.mp4")
    assert slugify("会議 2026.mp4").startswith("2026-") and slugify("会議 2026.mp4") != slugify("講演 2026.mp4")
    assert validate_id(slugify("???.mp4")).startswith("video-")


def test_store_refuses_escapes(tmp_path):
    store = LocalStore(tmp_path / "bucket")
    for key in ("../outside", "/etc/passwd", "a/../../x"):
        with pytest.raises(InvalidIdError):
            store.put_bytes(key, b"x")
    assert not (tmp_path / "outside").exists()


def test_writes_are_atomic(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("projects/p/a.json", b"old")
    with pytest.raises(FileNotFoundError):
        store.put_file("projects/p/a.json", tmp_path / "does-not-exist")
    assert store.get_bytes("projects/p/a.json") == b"old"
    leftovers = [f for f in os.listdir(tmp_path / "projects/p") if f.startswith(".tmp-")]
    assert leftovers == []
    assert list(store.list("projects/")) == ["projects/p/a.json"]
