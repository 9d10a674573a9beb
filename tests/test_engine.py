import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ucprotect import ProtectOptions, protect_folder
from ucprotect.engine import in_shard
from ucprotect.errors import ConfigError
from ucprotect.imageio import TEMP_MARKER, load_photo

from .conftest import PHOTOS, need_shared


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory):
    """A small tree of real camera photos (two folders) from the shared set."""
    need_shared()
    root = tmp_path_factory.mktemp("photos")
    picks = {"gps": ["DSCN0010.jpg", "DSCN0012.jpg"], "orientation": ["landscape_3.jpg", "portrait_6.jpg"]}
    for folder, names in picks.items():
        (root / folder).mkdir()
        for n in names:
            shutil.copy(PHOTOS / "exif-samples" / "jpg" / folder / n, root / folder / n)
    (root / "notes.txt").write_text("not a photo")
    return root


def test_folder_outputs_match_inputs(photo_tree, tmp_path, protector):
    result = protect_folder(photo_tree, tmp_path / "out", protector, ProtectOptions(format="png"))
    assert result.failed == 0 and result.count("done") == 4 and result.group_by == "folder"
    for row in result.rows:
        src, out = Path(row.input), Path(row.output)
        assert out.relative_to(tmp_path / "out") == src.relative_to(photo_tree).with_suffix(".png")
        assert Image.open(out).size == load_photo(src).size
        assert row.linf <= 8 and row.psnr > 30
        umask = os.umask(0)
        os.umask(umask)
        assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any file the user makes
    folders = {}
    for row in result.rows:
        folders.setdefault(Path(row.input).parent.name, set()).add(row.key)
    assert all(len(k) == 1 for k in folders.values())  # one key per folder
    assert folders["gps"] != folders["orientation"]  # distinct keys for distinct folders


def test_deterministic_bytes(photo_tree, tmp_path, protector):
    threads = torch.get_num_threads()
    for group_by in ("folder", "none"):  # folder means, and each photo's own embedding
        a = protect_folder(photo_tree, tmp_path / f"a{group_by}", protector,
                           ProtectOptions(batch_size=1, workers=1, group_by=group_by))
        b = protect_folder(photo_tree, tmp_path / f"b{group_by}", protector,
                           ProtectOptions(batch_size=8, workers=3, group_by=group_by))
        assert [r.output_sha256 for r in a.rows] == [r.output_sha256 for r in b.rows]
        assert [r.key for r in a.rows] == [r.key for r in b.rows]
    assert torch.get_num_threads() == threads  # the one-thread models of pass 1 give the threads back


def test_resume_skips_complete_and_cleans_temp(photo_tree, tmp_path, protector):
    out = tmp_path / "out"
    first = protect_folder(photo_tree, out, protector)
    victim = Path(first.rows[0].output)
    victim.unlink()  # as if the run had been interrupted before this file
    stale = victim.parent / f".{victim.name}.abc{TEMP_MARKER}"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))  # left by a run two hours ago
    in_flight = victim.parent / f".other.jpg.xyz{TEMP_MARKER}"  # another shard writing right now
    in_flight.write_bytes(b"busy")
    second = protect_folder(photo_tree, out, protector)
    assert second.count("done") == 1 and second.count("skipped") == 3
    assert victim.exists() and not stale.exists() and in_flight.exists()
    assert second.rows[0].output_sha256 == first.rows[0].output_sha256


def test_dry_run_writes_nothing(photo_tree, tmp_path, protector):
    result = protect_folder(photo_tree, tmp_path / "dry", protector, ProtectOptions(dry_run=True))
    assert result.count("planned") == 4
    assert not (tmp_path / "dry").exists()


def test_shards_partition_the_collection(photo_tree, tmp_path, protector):
    seen = []
    for k in (1, 2, 3):
        r = protect_folder(photo_tree, tmp_path / "s", protector, ProtectOptions(dry_run=True, shard=(k, 3), group_by="none"))
        seen += [row.input for row in r.rows]
    assert sorted(seen) == sorted(str(p) for p in photo_tree.rglob("*.jpg"))
    assert in_shard("a/b.jpg", (1, 1))


def test_out_inside_src_is_refused(photo_tree, protector):
    with pytest.raises(ConfigError, match="inside the input folder"):
        protect_folder(photo_tree, photo_tree / "safe", protector)


@pytest.mark.parametrize("option, flag", [({"quality": 0}, "--quality"), ({"batch_size": 0}, "--batch-size"),
                                          ({"max_pixels": 0}, "--max-pixels"), ({"clusters": 0, "group_by": "cluster"}, "--clusters")])
def test_impossible_settings_are_refused_before_any_work(tmp_path, protector, option, flag):
    """A setting that could only fail every photo (or crash mid-run on a GPU, as a zero batch did) is refused by name."""
    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((40, 40, 3), 100, np.uint8)).save(tmp_path / "in" / "a.png")
    with pytest.raises(ConfigError, match=flag):
        protect_folder(tmp_path / "in", tmp_path / "o", protector, ProtectOptions(**option))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("group_by", ["none", "cluster"])
def test_two_inputs_for_one_output_fail_the_second_by_name(tmp_path, protector, group_by):
    """a.png and a.jpg under --format jpeg both became a.jpg: 'done 2' with one file, one photo unprotected."""
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "a.png", "b.png"):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "in" / name)
    result = protect_folder(tmp_path / "in", tmp_path / "o", protector, ProtectOptions(group_by=group_by, format="jpeg"))
    rows = {Path(r.input).name: r for r in result.rows}
    assert rows["a.jpg"].status == "done" and rows["b.png"].status == "done"
    assert rows["a.png"].status == "failed" and "a.jpg beside it goes to the same output" in rows["a.png"].reason
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if not p.name.startswith(".")) == ["a.jpg", "b.jpg"]


def test_outputs_differing_only_in_case_clash_where_the_file_system_ignores_case(tmp_path, protector, monkeypatch):
    """On macOS and Windows b.JPG and b.jpg are one file: the second photo overwrote the first, both 'done'."""
    from ucprotect import imageio

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for name in ("b.JPG", "b.jpg"):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "in" / name, format="JPEG")
    assert not imageio.names_fold_case(tmp_path)  # this machine's file system tells the two apart ...
    result = protect_folder(tmp_path / "in", tmp_path / "o1", protector, ProtectOptions(group_by="none"))
    assert [r.status for r in result.rows] == ["done", "done"]
    monkeypatch.setattr(imageio, "names_fold_case", lambda folder: True)  # ... a Mac's does not
    result = protect_folder(tmp_path / "in", tmp_path / "o2", protector, ProtectOptions(group_by="none"))
    rows = {Path(r.input).name: r for r in result.rows}
    assert rows["b.JPG"].status == "done"
    assert rows["b.jpg"].status == "failed" and "does not tell upper from lower case" in rows["b.jpg"].reason


def test_report_json(photo_tree, tmp_path, protector):
    result = protect_folder(photo_tree, tmp_path / "o", protector, ProtectOptions(group_by="none"))
    result.write_report(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["done"] == 4
    row = data["images"][0]
    assert {"input", "output", "psnr", "ssim", "linf", "input_sha256", "output_sha256", "status"} <= set(row)


def test_python_api_single_image(protector, tmp_path):
    img = Image.fromarray((np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8))
    out = protector.protect(img)
    assert out.size == img.size
    d = np.abs(np.asarray(out, dtype=int) - np.asarray(img, dtype=int)).max()
    assert 0 < d <= 8
    # the very pixels the folder job writes for a lone photo
    (tmp_path / "in").mkdir()
    img.save(tmp_path / "in" / "x.png")
    protect_folder(tmp_path / "in", tmp_path / "out", protector, ProtectOptions(group_by="none"))
    assert np.array_equal(np.asarray(out), np.asarray(Image.open(tmp_path / "out" / "x.png")))


def test_textures_come_from_a_cpu_copy_on_other_devices(weights_file, protector, monkeypatch):
    """On a GPU the per-photo textures, key likeness and fingerprint are read from a CPU copy of the generator
    (no device round trip per photo; keys independent of the device's rounding). A "meta" device stands in
    for the GPU: its tensors hold no values, so any read of the device's generator would raise."""
    from ucprotect import Protector, engine, imageio

    monkeypatch.setattr(engine, "resolve_device", lambda device: torch.device("meta"))
    elsewhere = Protector.from_file(weights_file, device="cuda")
    assert elsewhere.generator.freq.device.type == "meta" and elsewhere.cpu_generator.freq.device.type == "cpu"
    pixels = (np.random.default_rng(1).random((60, 90, 3)) * 255).astype(np.uint8)
    photo = imageio.Photo(path=Path("<memory>"), format="PNG", colour="rgb", pixels=pixels)
    assert np.array_equal(elsewhere.perturb_pixels(photo, 3), protector.perturb_pixels(photo, 3))
    assert torch.equal(elsewhere.texture_similarity, protector.texture_similarity)
    assert elsewhere.weights_id == protector.weights_id


def test_ctrl_c_while_embedding_stops_promptly(tmp_path, protector, monkeypatch):
    """Thumbnails are decoded a bounded distance ahead of the results: an interrupt does not first decode
    (or hold in memory) the rest of a large collection, and nothing is written."""
    from ucprotect import engine, imageio

    src = tmp_path / "flat"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(src / f"{i:02d}.png")
    decoded = []
    real_thumbnail = imageio.load_thumbnail
    monkeypatch.setattr(imageio, "load_thumbnail", lambda p, *a: decoded.append(p) or real_thumbnail(p, *a))

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(protector, "embed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        engine.protect_folder(src, tmp_path / "out", protector, ProtectOptions(group_by="cluster", batch_size=4, workers=2))
    # the first chunk (of 4 on CPU) and at most workers + 1 chunks in flight with it, not all 60
    assert 4 <= len(decoded) <= 12
    assert not [p for p in (tmp_path / "out").rglob("*") if p.suffix == ".png"]


def test_split_halves_lookup_writes_what_the_dense_texture_gives(protector, monkeypatch):
    """Split halves go through protect's table lookup (a table per half) and give the dense render's pixels."""
    import copy
    from dataclasses import replace

    from ucprotect import imageio
    from ucprotect.generator import create_generator

    halves = create_generator(replace(protector.generator.config, luma_factor=6.0, split_layout="halves"))
    halves.load_state_dict(protector.generator.state_dict())
    split = copy.copy(protector)
    split.generator = split.cpu_generator = halves.eval()
    pixels = (16 + np.random.default_rng(1).random((61, 90, 3)) * 223).astype(np.uint8)  # no clipping at 0 or 255
    photo = imageio.Photo(path=Path("<memory>"), format="PNG", colour="rgb", pixels=pixels)
    looked_up = split.perturb_pixels(photo, 3)
    monkeypatch.setattr(halves, "periodic_form", lambda *a, **k: None)
    dense = split.perturb_pixels(photo, 3)
    diff = np.abs(looked_up.astype(int) - dense.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert np.abs(looked_up.astype(int) - pixels.astype(int)).max() <= 8
    grey_half = looked_up[31:].astype(int) - pixels[31:].astype(int)
    assert (grey_half[..., 0] == grey_half[..., 1]).all() and (grey_half[..., 1] == grey_half[..., 2]).all()  # grey below
    colour_half = looked_up[:31].astype(int) - pixels[:31].astype(int)
    assert np.array_equal(colour_half, protector.perturb_pixels(photo, 3)[:31].astype(int) - pixels[:31])  # key's own wave


def test_dense_perturbation_draws_the_key_asked_for(protector):
    """Two concepts may share a text embedding (ImageNet has two 'crane's, two 'maillot's): the dense path must
    draw the key it is given, as the table lookup does, not the first key with that embedding."""
    import copy

    twin = copy.deepcopy(protector)
    twin.generator.key_embeddings[5] = twin.generator.key_embeddings[2]  # key 5 now shares key 2's embedding
    twin.cpu_generator = twin.generator
    h, w = 37, 52
    drawn = twin.perturbation(torch.zeros(1, 3, h, w), 5)[0]
    with torch.no_grad():
        own = twin.generator.render(torch.tensor([5]), h, w)[0] * twin.epsilon
        other = twin.generator.render(torch.tensor([2]), h, w)[0] * twin.epsilon
    assert torch.allclose(drawn, own.clamp(-twin.epsilon, twin.epsilon), atol=1e-5)
    assert not torch.allclose(drawn, other, atol=1e-2)


def test_shipped_weights_protect_within_budget(photo_tree, tmp_path):
    """The default weights in weights/ load and protect real photos within L-inf 8/255: the README's main
    command works on what the repository ships (a broken or mismatched file fails here, not at a user's)."""
    from ucprotect import Protector
    from ucprotect.weights import DEFAULT_WEIGHTS_NAME, default_weights_path

    path = default_weights_path()
    if path is None or not path.exists():
        pytest.skip(f"{DEFAULT_WEIGHTS_NAME} not found beside the package")
    shipped = Protector.from_file(device="cpu")
    config = shipped.generator.config
    assert (config.min_cycles, config.max_cycles, config.luma_factor) == (8.0, 16.0, 0.0)  # v5: one colour wave,
    assert (config.split_min_px, config.small_factor) == (6.0, 0.5)  # and v3's 4-8 cycles on photos under 96 px
    result = protect_folder(photo_tree, tmp_path / "out", shipped, ProtectOptions(format="png"))
    assert result.failed == 0 and result.count("done") == 4
    assert all(0 < row.linf <= 8 and row.psnr > 28 for row in result.rows)
    for row in result.rows:
        out = np.asarray(Image.open(row.output).convert("RGB")).astype(int)
        delta = out - np.asarray(load_photo(Path(row.input)).pixels).astype(int)
        for part in (delta[: delta.shape[0] // 4], delta[delta.shape[0] * 3 // 4:]):  # colour top and bottom (v4: grey below)
            assert ((part[..., 0] == part[..., 1]) & (part[..., 1] == part[..., 2])).mean() < 0.5


def test_resume_with_other_shipped_weights_names_them(photo_tree, tmp_path):
    """A folder protected with an earlier default (v3, kept in weights/) and resumed with today's: refused, and
    the message names the file that continues it, found by the keys file's fingerprint."""
    from ucprotect import Protector
    from ucprotect.keyfile import OtherWeightsKeysError
    from ucprotect.weights import default_weights_path

    v3 = default_weights_path().parent / "ucprotect-conse-v3.safetensors"
    if not v3.exists():
        pytest.skip(f"{v3} not found beside the package")
    protect_folder(photo_tree, tmp_path / "out", Protector.from_file(v3, device="cpu"))
    with pytest.raises(OtherWeightsKeysError, match=f"--weights {v3}"):
        protect_folder(photo_tree, tmp_path / "out", Protector.from_file(device="cpu"), ProtectOptions(overwrite=True))
