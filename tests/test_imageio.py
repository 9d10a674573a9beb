import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from ucprotect import ProtectOptions, protect_folder
from ucprotect.errors import ConfigError, ImageError, OutputError
from ucprotect.imageio import TEMP_MARKER, load_photo, write_atomic

from .conftest import PHOTOS, need_shared


def test_exif_orientation_all_eight_tags_give_same_upright_image():
    need_shared()
    for kind in ("Landscape", "Portrait"):
        ref = load_photo(PHOTOS / "exif-orientation" / f"{kind}_1.jpg").rgb8().astype(float)
        for k in range(2, 9):
            img = load_photo(PHOTOS / "exif-orientation" / f"{kind}_{k}.jpg").rgb8().astype(float)
            assert img.shape == ref.shape, (kind, k)
            assert np.abs(img - ref).mean() < 8, (kind, k)


def _modes(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    rgb = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    files = {}
    Image.fromarray(rgb).save(files.setdefault("rgb", root / "rgb.png"))
    Image.fromarray(rgb[..., 0]).save(files.setdefault("gray", root / "gray.png"))
    rgba = np.dstack([rgb, (rng.random((40, 56)) * 255).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(files.setdefault("rgba", root / "rgba.png"))
    Image.fromarray(rgba[..., [0, 3]], "LA").save(files.setdefault("la", root / "la.png"))
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(files.setdefault("palette", root / "p.png"))
    Image.fromarray((rng.random((40, 56)) * 65535).astype(np.uint16)).save(files.setdefault("gray16", root / "g16.png"))
    Image.fromarray(rgb).convert("CMYK").save(files.setdefault("cmyk", root / "cmyk.tif"))
    Image.fromarray(rgb).save(files.setdefault("webp", root / "lossless.webp"), lossless=True)
    Image.fromarray(rgb).save(files.setdefault("bmp", root / "x.bmp"))
    Image.fromarray(rgb).save(files.setdefault("tiff", root / "x.tiff"), compression="tiff_lzw")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb).save(files.setdefault("icc", root / "icc.png"), icc_profile=srgb)
    return files


def test_modes_formats_alpha_and_budget(tmp_path, protector):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    files = _modes(src)
    result = protect_folder(src, dst, protector, ProtectOptions(group_by="none"))
    assert result.failed == 0, [r.reason for r in result.rows if r.status == "failed"]
    for name, path in files.items():
        out = dst / path.name
        a, b = Image.open(path), Image.open(out)
        assert a.size == b.size and a.format == b.format, name
        pa, pb = load_photo(path), load_photo(out)
        assert pa.colour == pb.colour and pa.pixels.dtype == pb.pixels.dtype, name
        diff = np.abs(pa.pixels.astype(np.int64) - pb.pixels.astype(np.int64)).max() * 255 / pa.max_value
        assert diff <= 8.0 + 1e-9, name  # lossless outputs keep the L-inf budget
        if name != "palette":
            assert diff > 0, f"{name}: nothing was perturbed"
        if pa.alpha is not None:
            assert np.array_equal(pa.alpha, pb.alpha), f"{name}: alpha changed"
    assert Image.open(dst / "icc.png").info.get("icc_profile") == Image.open(files["icc"]).info["icc_profile"]


def test_metadata_policies(tmp_path, protector):
    need_shared()
    src = PHOTOS / "exif-samples" / "jpg" / "gps" / "DSCN0010.jpg"
    for policy, gps_expected in (("safe", False), ("keep", True), ("strip", None)):
        dst = tmp_path / policy
        protect_folder(src, dst, protector, ProtectOptions(metadata=policy))
        exif = Image.open(dst / src.name).getexif()
        if policy == "strip":
            assert len(exif) == 0
            continue
        assert exif.get(0x010F) == "NIKON"  # camera make kept
        assert bool(exif.get_ifd(0x8825)) == gps_expected
        assert exif.get(0x0112, 1) == 1


def test_orientation_reset_and_applied(tmp_path, protector):
    need_shared()
    src = PHOTOS / "exif-orientation" / "Portrait_6.jpg"
    protect_folder(src, tmp_path, protector, ProtectOptions())
    out = Image.open(tmp_path / src.name)
    assert out.getexif().get(0x0112, 1) == 1
    assert out.size == load_photo(src).size  # upright size, not the stored one


@pytest.mark.parametrize("case", ["empty", "truncated", "not_image", "bomb", "tiny", "animated"])
def test_bad_inputs_are_reported_and_others_continue(tmp_path, protector, case):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(src / "good.png")
    bad = src / "bad.png"
    max_pixels = 10**8
    if case == "empty":
        bad.write_bytes(b"")
    elif case == "truncated":
        Image.fromarray((np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)).save(tmp_path / "full.png")
        bad.write_bytes((tmp_path / "full.png").read_bytes()[:3000])
    elif case == "not_image":
        bad.write_text("hello, not an image")
    elif case == "bomb":
        Image.new("RGB", (300, 300)).save(bad)
        max_pixels = 50_000
    elif case == "tiny":
        Image.new("RGB", (8, 8)).save(bad)
    elif case == "animated":
        frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
        frames[0].save(bad, save_all=True, append_images=frames[1:])
    result = protect_folder(src, dst, protector, ProtectOptions(group_by="none", max_pixels=max_pixels))
    rows = {Path(r.input).name: r for r in result.rows}
    assert rows["good.png"].status == "done"
    assert rows["bad.png"].status == "failed"
    assert "bad.png" in rows["bad.png"].reason
    if case in ("empty", "truncated", "not_image"):  # a damaged file's message says what to do about it
        assert "copy it again from its source or re-export it" in rows["bad.png"].reason
    assert not (dst / "bad.png").exists()
    with pytest.raises(ImageError, match="bad.png"):
        protect_folder(src, tmp_path / "ff", protector, ProtectOptions(group_by="none", max_pixels=max_pixels, fail_fast=True,
                                                                        overwrite=True))


def test_a_folder_where_an_output_goes_fails_that_photo_and_a_link_loop_is_refused(tmp_path, protector):
    """A folder in the place of one output is no finished output (it was counted as one and skipped); a looping
    link as the input gets a message, not Python's RuntimeError."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in ("1.png", "2.png"):
        Image.fromarray(np.full((40, 40, 3), 100, np.uint8)).save(src / name)
    (dst / "1.png").mkdir(parents=True)
    rows = {Path(r.input).name: r for r in protect_folder(src, dst, protector, ProtectOptions(group_by="none")).rows}
    assert rows["2.png"].status == "done"
    assert rows["1.png"].status == "failed" and "folder of that name is in the way" in rows["1.png"].reason
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    with pytest.raises(ConfigError, match="loop"):
        protect_folder(tmp_path / "loop_a", tmp_path / "o", protector)


def test_linked_folders_are_searched_once_and_never_the_output(tmp_path):
    """A linked folder of photos was passed over without a word; following links must not loop, nor read
    protect's own outputs back as inputs."""
    from ucprotect.imageio import find_images

    src, elsewhere, out = tmp_path / "src", tmp_path / "elsewhere", tmp_path / "out"
    for folder in (src / "real", elsewhere, out):
        folder.mkdir(parents=True)
        Image.fromarray(np.full((20, 20, 3), 9, np.uint8)).save(folder / f"{folder.name}.png")
    (src / "linked").symlink_to(elsewhere)
    (src / "real" / "up").symlink_to(src)  # a loop
    (src / "outlink").symlink_to(out)
    (src / "real" / "out.png").symlink_to(out / "out.png")  # a linked file to an output
    images, _ = find_images(src, exclude=out)
    assert sorted(p.relative_to(src).as_posix() for p in images) == ["linked/elsewhere.png", "real/real.png"]


def test_write_atomic_keeps_the_old_file_whole_when_a_write_fails(tmp_path):
    """Reports and plots go through the same atomic write as photos: a full disk or a folder in the way
    gives one message naming the file and leaves the earlier file untouched and no temporary file behind."""
    dest = tmp_path / "r.json"
    write_atomic(dest, lambda fh: fh.write(b"old"), option="--report")

    def fill_disk(fh):
        fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"r\.json.*disk full"):
        write_atomic(dest, fill_disk, option="--report")
    assert dest.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="folder of that name is in the way.*--report"):
        write_atomic(tmp_path / "d", lambda fh: fh.write(b"x"), option="--report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "r.json"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="simulating a full disk needs /proc (Linux)")
def test_disk_full_and_blocked_output_folder_fail_per_file(tmp_path, protector, monkeypatch):
    """Disk full while writing one file, and an output folder blocked by a file: each is reported by
    name, leaves no partial or temporary file, and the other photos are still written."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for folder in ("a", "b"):
        (src / folder).mkdir(parents=True)
        for name in ("1.png", "2.png"):
            Image.fromarray(np.full((40, 40, 3), 100, np.uint8)).save(src / folder / name)
    dst.mkdir()
    (dst / "b").write_text("a file where the output folder b/ should go")
    real_save = Image.Image.save

    def save(self, fp, *args, **kwargs):
        name = getattr(fp, "name", "")
        if isinstance(name, int):  # a file opened from a descriptor (the engine's temp file): find its path
            name = os.readlink(f"/proc/self/fd/{name}")
        if "/a/.1.png." in name:  # writing a/1.png runs out of space
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    result = protect_folder(src, dst, protector, ProtectOptions(group_by="none"))
    rows = {Path(r.input).relative_to(src).as_posix(): r for r in result.rows}
    assert rows["a/2.png"].status == "done" and (dst / "a" / "2.png").exists()
    assert rows["a/1.png"].status == "failed" and "disk full" in rows["a/1.png"].reason and "1.png" in rows["a/1.png"].reason
    assert not (dst / "a" / "1.png").exists()
    for name in ("b/1.png", "b/2.png"):
        assert rows[name].status == "failed" and "writable folder" in rows[name].reason and name.split("/")[1] in rows[name].reason
    assert not [p for p in dst.rglob("*") if TEMP_MARKER in p.name]


def test_unwritable_out_is_refused_before_any_work(tmp_path, protector):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.full((40, 40, 3), 100, np.uint8)).save(src / "x.png")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="not a folder|cannot write"):
        protect_folder(src, tmp_path / "file", protector, ProtectOptions(group_by="none"))
    with pytest.raises(ConfigError, match="cannot write"):
        protect_folder(src, tmp_path / "file" / "sub", protector, ProtectOptions(group_by="none"))
