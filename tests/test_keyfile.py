"""The keys file: a collection protected over several runs (or shards) keeps one pattern per folder."""
import json

import numpy as np
import pytest
from PIL import Image

from ucprotect import ProtectOptions, protect_folder
from ucprotect.errors import ConfigError
from ucprotect.imageio import TEMP_MARKER
from ucprotect.keyfile import KEYS_FILE_NAME


def _images(folder, n, hue, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(hue * 100 + start)
    for i in range(start, start + n):
        arr = (rng.random((72, 96, 3)) * 90).astype(np.uint8)
        arr[..., hue % 3] += 150
        Image.fromarray(arr).save(folder / f"{i}.png")


def _embedded(src, dst, protector, **kw):
    """Run protect_folder; return (result, number of photos it embedded)."""
    counts = []
    result = protect_folder(src, dst, protector, ProtectOptions(**kw),
                            on_event=lambda kind, payload: counts.append(payload) if kind == "start_embedding" else None)
    return result, sum(counts)


def _keys(result):
    return {r.input: r.key for r in result.rows if r.status == "done"}


def test_growing_collection_keeps_folder_keys(tmp_path, protector):
    src, out = tmp_path / "src", tmp_path / "out"
    _images(src / "a", 3, 0)
    _images(src / "b", 3, 1)
    first, n1 = _embedded(src, out, protector)
    assert first.group_by == "folder" and first.groups_new == 2 and n1 == 6
    record = json.loads((out / KEYS_FILE_NAME).read_text())
    key_a, key_b = record["folders"]["a"], record["folders"]["b"]
    assert {r.key for r in first.rows if "/a/" in r.input} == {key_a} and key_a != key_b

    _images(src / "a", 2, 0, start=3)  # new photos in an old folder
    _images(src / "c", 2, 2)  # and a new folder
    second, n2 = _embedded(src, out, protector)
    assert n2 == 2  # only the new folder is embedded: recorded folders keep their keys
    assert second.groups_recorded == 2 and second.groups_new == 1 and second.count("skipped") == 6
    keys = {r.input.split("/")[-2]: r.key for r in second.rows if r.status == "done"}
    assert keys["a"] == key_a and keys["c"] not in (key_a, key_b)
    assert json.loads((out / KEYS_FILE_NAME).read_text())["folders"] == {"a": key_a, "b": key_b, "c": keys["c"]}


def test_keys_only_then_shards_share_one_assignment(tmp_path, protector):
    src, out = tmp_path / "src", tmp_path / "out"
    for h, name in enumerate("pqrs"):
        _images(src / name, 2, h)
    plan, _ = _embedded(src, out, protector, keys_only=True, shard=(1, 2))  # keys for every folder, whatever the shard
    assert plan.count("planned") == 8 and not [p for p in out.rglob("*.png")]
    folders = json.loads((out / KEYS_FILE_NAME).read_text())["folders"]
    assert sorted(folders) == list("pqrs") and len(set(folders.values())) == 4
    seen = {}
    for k in (1, 2):
        result, embedded = _embedded(src, out, protector, shard=(k, 2))
        assert embedded == 0
        seen.update({r.input.split("/")[-2]: r.key for r in result.rows})
    assert seen == folders


def test_cluster_keys_are_reused_for_new_photos(tmp_path, protector):
    src, out = tmp_path / "flat", tmp_path / "out"
    for h in range(3):
        _images(src, 3, h, start=3 * h)
    first, n1 = _embedded(src, out, protector, group_by="cluster", clusters=3)
    assert n1 == 9 and first.groups_new == 3
    cluster_keys = json.loads((out / KEYS_FILE_NAME).read_text())["cluster_keys"]
    _images(src, 2, 1, start=20)
    second, n2 = _embedded(src, out, protector, group_by="cluster", clusters=3)
    assert n2 == 2 and second.groups_new == 0 and second.count("done") == 2  # no re-clustering of the old photos
    assert set(_keys(second).values()) <= set(cluster_keys)


def test_keys_file_of_other_weights_or_corrupt_is_refused(tmp_path, protector):
    src, out = tmp_path / "src", tmp_path / "out"
    _images(src / "a", 1, 0)
    _images(src / "b", 1, 1)
    out.mkdir()
    keys = out / KEYS_FILE_NAME
    keys.write_text(json.dumps({"format": "ucprotect-keys", "weights_id": "someotherweights", "folders": {"a": 3}}))
    with pytest.raises(ConfigError, match="other generator weights"):
        protect_folder(src, out, protector)
    keys.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable keys file"):
        protect_folder(src, out, protector)
    assert not [p for p in out.rglob("*.png")]


def test_keys_only_needs_groups(tmp_path, protector):
    _images(tmp_path / "src", 2, 0)
    with pytest.raises(ConfigError, match="--keys-only"):
        protect_folder(tmp_path / "src", tmp_path / "out", protector, ProtectOptions(keys_only=True, group_by="none"))


def test_folders_share_a_wave_with_their_super_group(tmp_path, protector):
    """Eight folders of two kinds: folders of a kind share one key (half the pattern), each keeps its own."""
    src, out = tmp_path / "src", tmp_path / "out"
    for f in range(8):
        _images(src / f"f{f}", 2, 2 * (f % 2))  # f0, f2, ... red; f1, f3, ... blue
    first, _ = _embedded(src, out, protector, super_groups=2)
    record = json.loads((out / KEYS_FILE_NAME).read_text())
    shared, own = record["shared"], record["folders"]
    assert len(record["super_keys"]) == 2 and set(shared.values()) == set(record["super_keys"])
    assert len({shared[f"f{f}"] for f in range(0, 8, 2)}) == 1 and shared["f0"] != shared["f1"]
    assert len(set(own.values())) == 8 and not set(own.values()) & set(shared.values())
    assert {(r.key, r.shared_key) for r in first.rows if "/f3/" in r.input} == {(own["f3"], shared["f3"])}

    _images(src / "g", 2, 3)  # a later, red folder (hue 3 = red) joins the red super-group
    second, _ = _embedded(src, out, protector)
    row = next(r for r in second.rows if "/g/" in r.input)
    assert row.shared_key == shared["f0"] and row.key not in own.values()

    flat, _ = _embedded(src, tmp_path / "one-level", protector, super_groups=0)
    assert {r.shared_key for r in flat.rows} == {-1}
    assert "shared" not in json.loads((tmp_path / "one-level" / KEYS_FILE_NAME).read_text()) or \
        not json.loads((tmp_path / "one-level" / KEYS_FILE_NAME).read_text())["shared"]


def test_version_1_keys_file_reads_as_one_level(tmp_path, protector):
    src, out = tmp_path / "src", tmp_path / "out"
    for f in range(5):
        _images(src / f"f{f}", 1, f)
    out.mkdir()
    folders = {f"f{f}": 10 + f for f in range(5)}
    (out / KEYS_FILE_NAME).write_text(json.dumps({"format": "ucprotect-keys", "version": 1,
                                                  "weights_id": protector.weights_id, "folders": folders}))
    result = protect_folder(src, out, protector)
    assert {r.input.split("/")[-2]: (r.key, r.shared_key) for r in result.rows} == {f: (k, -1) for f, k in folders.items()}


def test_negative_super_groups_is_refused(tmp_path, protector):
    _images(tmp_path / "src" / "a", 1, 0)
    with pytest.raises(ConfigError, match="--super-groups -1"):
        protect_folder(tmp_path / "src", tmp_path / "out", protector, ProtectOptions(super_groups=-1))


def test_super_groups_with_split_textures_are_refused_before_anything_is_written(tmp_path, protector):
    """v4's halves have no two-level form: asking for super-groups used to fail every photo one by one and
    leave a keys file with super-groups behind; it is refused up front instead."""
    v4_like = _redrawn(protector, luma_factor=6.0, split_layout="halves")
    halves = v4_like.generator
    assert protector.generator.two_level and not halves.two_level
    for i, folder in enumerate("abc"):
        _images(tmp_path / "src" / folder, 1, i)
    with pytest.raises(ConfigError, match="--super-groups 2: these weights draw no two-level textures"):
        protect_folder(tmp_path / "src", tmp_path / "out", v4_like, ProtectOptions(group_by="folder", super_groups=2))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert len(protect_folder(tmp_path / "src", tmp_path / "out", v4_like, ProtectOptions(group_by="folder")).rows) == 3


def _redrawn(protector, **settings):
    """The test weights' tensors drawn with other generator settings (as v2, v3 and v4 share v1's tensors)."""
    from dataclasses import replace

    from ucprotect import Protector
    from ucprotect.generator import create_generator

    bundle = protector.bundle
    generator = create_generator(replace(bundle.generator.config, **settings))
    generator.load_state_dict(bundle.generator.state_dict())
    return Protector(replace(bundle, generator=generator), device="cpu")


def test_keys_file_of_the_same_tensors_in_another_band_is_refused(tmp_path, protector):
    """v2 and v3 hold the same generator tensors and draw them at other frequencies: resuming a v2 output with
    v3 would give one folder's photos two different textures, so the fingerprint counts the settings too."""
    v2, v3 = _redrawn(protector, min_cycles=12.0, max_cycles=24.0), _redrawn(protector, min_cycles=4.0, max_cycles=8.0)
    assert v2.weights_id != v3.weights_id and _redrawn(protector, min_cycles=4.0, max_cycles=8.0).weights_id == v3.weights_id
    src, out = tmp_path / "src", tmp_path / "out"
    _images(src / "a", 1, 0)
    _images(src / "b", 1, 1)
    protect_folder(src, out, v2)
    assert (out / KEYS_FILE_NAME).exists()
    _images(src / "a", 1, 0, start=5)
    with pytest.raises(ConfigError, match="other generator weights"):
        protect_folder(src, out, v3)


def test_keys_file_from_before_the_band_counted_resumes_at_v2s_band_only(tmp_path, protector):
    """Files written before session 15 carry a tensors-only fingerprint; v2 (12-24 cycles) was shipped then, so
    they continue under v2's band and are refused under any other (v3's 4-8)."""
    v2, v3 = _redrawn(protector, min_cycles=12.0, max_cycles=24.0), _redrawn(protector, min_cycles=4.0, max_cycles=8.0)
    tensors_only = v2.legacy_weights_ids[-1]
    assert tensors_only not in v3.legacy_weights_ids and tensors_only != v2.weights_id
    src, out = tmp_path / "src", tmp_path / "out"
    _images(src / "a", 1, 0)
    _images(src / "b", 1, 1)
    protect_folder(src, out, v2)
    keys = out / KEYS_FILE_NAME
    data = json.loads(keys.read_text())
    keys.write_text(json.dumps({**data, "weights_id": tensors_only}))  # as an older ucprotect wrote it
    _images(src / "a", 1, 0, start=5)
    with pytest.raises(ConfigError, match="other generator weights"):
        protect_folder(src, out, v3)
    resumed = protect_folder(src, out, v2)
    assert resumed.count("done") == 1 and resumed.groups_new == 0


def test_v3_keeps_the_fingerprints_every_earlier_version_recorded():
    """Adding a generator setting must not orphan earlier outputs' keys files. These are the fingerprints that
    ucprotect at c5caefb (session 15), 0bd72c9, 9fbf184 (session 17) and 39c8add (session 19) computed for the
    shipped v3 file: the first is today's, the others are accepted as the same weights."""
    from ucprotect import Protector
    from ucprotect.weights import default_weights_path

    path = default_weights_path().parent / "ucprotect-conse-v3.safetensors"
    if not path.exists():
        pytest.skip(f"{path} not found beside the package")
    v3 = Protector.from_file(path, device="cpu")
    assert v3.weights_id == "b91cd9402c0f670e"
    assert set(v3.legacy_weights_ids) == {"d79b4abef4dd91f0", "faf9f00715da0288", "707de704d55af7e3"}


def test_save_merges_a_keys_file_that_still_carries_the_older_fingerprint(tmp_path):
    """A save re-reads the file to keep keys another shard wrote meanwhile; a file still under the older
    fingerprint of the same weights must be merged too, not replaced."""
    from ucprotect.keyfile import KeyRecord

    path = tmp_path / KEYS_FILE_NAME
    path.write_text(json.dumps({"format": "ucprotect-keys", "weights_id": "old", "folders": {"a": 1}}))
    record = KeyRecord.load(path, "new", ("old",))
    path.write_text(json.dumps({"format": "ucprotect-keys", "weights_id": "old", "folders": {"a": 1, "x": 7}}))
    record.folders["b"] = 2
    record.save(path)
    data = json.loads(path.read_text())
    assert data["weights_id"] == "new" and data["folders"] == {"a": 1, "b": 2, "x": 7}
    assert "legacy_ids" not in data


def test_save_refuses_a_keys_file_of_other_weights_that_appeared_meanwhile(tmp_path):
    """Another run with other weights wrote the keys file after ours loaded it: replacing it would orphan the
    patterns of the photos that run protected, so the save stops with a message naming the file."""
    from ucprotect.keyfile import KeyRecord

    path = tmp_path / KEYS_FILE_NAME
    record = KeyRecord.load(path, "ours")
    theirs = json.dumps({"format": "ucprotect-keys", "weights_id": "theirs", "folders": {"a": 1}})
    path.write_text(theirs)
    record.folders["b"] = 2
    with pytest.raises(ConfigError, match="other generator weights wrote this keys file"):
        record.save(path)
    assert path.read_text() == theirs and not list(tmp_path.glob(f"*{TEMP_MARKER}"))
    path.write_text("{not json")  # an unreadable file is still replaced
    record.save(path)
    assert json.loads(path.read_text())["folders"] == {"b": 2}


def test_key_candidates_option_reaches_key_choice(tmp_path, protector, monkeypatch):
    """ProtectOptions.key_candidates (the CLI's --key-candidates; 0 and None both mean all concepts) is what key choice is given."""
    import ucprotect.engine as engine

    seen = []
    real = engine.assign_keys

    def spy(*args, **kw):
        seen.append(kw.get("key_candidates"))
        return real(*args, **kw)

    monkeypatch.setattr(engine, "assign_keys", spy)
    src = tmp_path / "src"
    _images(src / "a", 2, 0)
    _images(src / "b", 2, 1)
    _embedded(src, tmp_path / "out1", protector, keys_only=True)
    _embedded(src, tmp_path / "out2", protector, keys_only=True, key_candidates=None)
    assert seen == [16, None]
