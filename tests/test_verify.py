import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ucprotect.verify import (Recipe, apply_defense, cluster_labels, stratified_split, verify_dataset,
                              write_report_files)
from ucprotect.victims import create_victim, list_victims


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """3 classes told apart by colour; plus a 'protected' copy stamped with a class-keyed stripe
    pattern (must protect) and an identical copy (must not)."""
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    colours = [(200, 60, 60), (60, 200, 60), (60, 60, 200)]
    for c, col in enumerate(colours):
        for i in range(30):
            arr = np.clip(rng.normal(col, 60, (32, 32, 3)), 0, 255).astype(np.uint8)
            for sub, fn in (("data", lambda a: a), ("same", lambda a: a), ("stamped", lambda a, c=c: _stamp(a, c))):
                p = root / sub / f"class{c}" / f"{i}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(fn(arr)).save(p)
    return root


def _stamp(a, c):
    """A loud class-keyed pattern with its own colour code: whoever learns it ignores the real colour."""
    out = np.full_like(a, 128)
    out[:, c * 4 :: 12] = 255
    return out


RECIPE = Recipe(victim="small-cnn", image_size=32, epochs=6, batch_size=32, lr=0.05)


def test_known_protection_scores_high_and_identity_scores_zero(toy):
    strong, _ = verify_dataset(toy / "data", RECIPE, protected_dir=toy / "stamped", test_fraction=0.3)
    none, samples = verify_dataset(toy / "data", RECIPE, protected_dir=toy / "same", test_fraction=0.3)
    assert strong.run("clean").peak > 0.8
    assert strong.score("protected") > 0.6
    assert none.score("protected") == pytest.approx(0.0, abs=1e-9)
    write_report_files(strong, samples, toy / "r.json", toy / "r.png")
    data = json.loads((toy / "r.json").read_text())
    assert data["runs"][1]["name"] == "protected" and "verdict" in data
    assert Image.open(toy / "r.png").size[0] > 100


def test_clean_cache_is_shared_by_relative_and_absolute_paths(toy, monkeypatch):
    """A clean run kept in ``clean_cache`` is reused whether the dataset is named relatively or absolutely."""
    from ucprotect import verify

    trained = []
    monkeypatch.setattr(verify, "train_victim", lambda *a, **k: trained.append(1) or [0.5])
    cache = {}
    verify_dataset(toy / "data", RECIPE, protected_dir=toy / "same", test_fraction=0.3, clean_cache=cache)
    assert len(trained) == 2 and len(cache) == 1
    monkeypatch.chdir(toy)
    verify_dataset(Path("data"), RECIPE, protected_dir=toy / "same", test_fraction=0.3, clean_cache=cache)
    assert len(trained) == 3 and len(cache) == 1  # the protected run alone
    # with an id for the protected copies, the undefended protected run is kept as well, one per id
    run = lambda pid, defenses=(): verify_dataset(Path("data"), RECIPE, protected_dir=toy / "same", test_fraction=0.3,
                                                  clean_cache=cache, protected_id=pid, defenses=list(defenses))
    run("weights-a")
    assert len(trained) == 4 and len(cache) == 2
    report, _ = run("weights-a", ["grayscale"])  # trains the defence run only
    assert len(trained) == 5 and [r.name for r in report.runs] == ["clean", "protected", "protected+grayscale"]
    run("weights-b")
    assert len(trained) == 6 and len(cache) == 3


def test_defended_baselines_train_the_clean_copies_through_each_defence(toy, monkeypatch):
    """"clean+D" trains on the clean copies through D, cached with the clean run; with copies that equal the
    originals it is the very run "protected+D" is, and the bottom line still looks at protected runs only."""
    cache = {}
    run = lambda: verify_dataset(toy / "data", RECIPE, protected_dir=toy / "same", test_fraction=0.3, clean_cache=cache,
                                 defenses=["grayscale"], defended_baselines=True)
    report, _ = run()
    assert [r.name for r in report.runs] == ["clean", "clean+grayscale", "protected", "protected+grayscale"]
    assert report.run("clean+grayscale").accuracy == report.run("protected+grayscale").accuracy
    assert report.run("clean+grayscale").peak < report.run("clean").peak  # the toy's classes differ by colour only
    assert report.bottom_line()[0].startswith("protected") and len(cache) == 2
    from ucprotect import verify

    trained = []
    monkeypatch.setattr(verify, "train_victim", lambda *a, **k: trained.append(1) or [0.5])
    again, _ = run()  # both clean runs from the cache: only the two protected runs train
    assert len(trained) == 2 and again.run("clean+grayscale").accuracy == report.run("clean+grayscale").accuracy

    from typer.testing import CliRunner

    from ucprotect.cli import app

    r = CliRunner().invoke(app, ["verify", str(toy / "data"), "--protected", str(toy / "same"), "--device", "cpu",
                                 "--defense", "blur", "--defended-baselines", "--report", str(toy / "d.json")])
    assert r.exit_code == 0, r.output
    names = [run["name"] for run in json.loads((toy / "d.json").read_text())["runs"]]
    assert names == ["clean", "clean+blur", "protected", "protected+blur"]


def test_clean_cache_file_reused_by_a_later_verify_and_checked(toy, monkeypatch):
    """``verify --clean-cache F`` twice: the second run trains the protected victim only. A file from
    another machine is not used; a file that is not a cache is refused by name, not overwritten."""
    from typer.testing import CliRunner

    from ucprotect import verify
    from ucprotect.cli import app
    from ucprotect.errors import DataError

    trained = []
    monkeypatch.setattr(verify, "train_victim", lambda *a, **k: trained.append(1) or [0.9, 0.5])
    f = toy / "clean.json"
    args = ["verify", str(toy / "data"), "--protected", str(toy / "same"), "--clean-cache", str(f), "--device", "cpu"]
    for expected in (2, 3):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        assert len(trained) == expected
    assert len(verify.CleanCache(f)) == 1

    data = json.loads(f.read_text())
    f.write_text(json.dumps({**data, "environment": "another machine"}))
    other = verify.CleanCache(f)
    assert other.stale == "another machine" and len(other) == 0

    f.write_text('{"runs": []}')  # e.g. a --report file passed by mistake
    with pytest.raises(DataError, match="clean.json: not a clean-run cache"):
        verify.CleanCache(f)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1 and "not a clean-run cache" in r.output and "Traceback" not in r.output
    assert f.read_text() == '{"runs": []}'
    with pytest.raises(DataError, match="its folder does not exist"):
        verify.CleanCache(toy / "nowhere" / "clean.json")


def test_protected_copies_deleted_unless_a_workdir_is_given(toy, monkeypatch, tmp_path):
    """verify's own copies of the protected train split (up to ~100 MB) go once they are read."""
    import shutil

    from ucprotect import verify

    monkeypatch.setattr(verify, "train_victim", lambda *a, **k: [0.5])
    used = []

    def protect_fn(paths, out_dir):
        used.append(out_dir)
        mapping = {p: out_dir / p.parent.name / p.name for p in paths}
        for src, dst in mapping.items():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
        return mapping

    verify_dataset(toy / "data", RECIPE, protect_fn=protect_fn, test_fraction=0.3)
    assert used[-1].name.startswith("ucprotect-verify-") and not used[-1].exists()
    verify_dataset(toy / "data", RECIPE, protect_fn=protect_fn, test_fraction=0.3, workdir=tmp_path / "keep")
    assert used[-1] == tmp_path / "keep" and len(list(used[-1].rglob("*.png"))) == 63


def test_unreadable_images_are_skipped_and_named(toy, monkeypatch, tmp_path):
    """A dataset with a few damaged files is still measured, without them, and the report names each one;
    a class left with no readable image drops out."""
    import shutil

    from ucprotect import verify

    data = tmp_path / "data"
    shutil.copytree(toy / "data", data)
    (data / "class0" / "0.png").write_bytes(b"")
    (data / "class1" / "1.png").write_bytes((toy / "data" / "class1" / "1.png").read_bytes()[:200])
    (data / "class3").mkdir()
    (data / "class3" / "bad.png").write_text("not an image")
    seen = []
    monkeypatch.setattr(verify, "train_victim", lambda x, y, tx, ty, n, *a, **k: seen.append((len(x) + len(tx), n)) or [0.5])
    report, _ = verify_dataset(data, RECIPE, protected_dir=toy / "stamped", test_fraction=0.3)
    assert sorted(Path(m.split(":")[0]).name for m in report.skipped) == ["0.png", "1.png", "bad.png"]
    assert seen[0] == (88, 3) and report.num_classes == 3
    assert json.loads(json.dumps(report.to_json()))["skipped"] == report.skipped


def test_impossible_recipes_are_refused_before_loading(toy):
    from ucprotect.errors import ConfigError

    for change, flag in (({"victim": "nope"}, "--victim"), ({"image_size": 8}, "--image-size"), ({"epochs": 0}, "--epochs"),
                         ({"batch_size": 0}, "--batch-size"), ({"lr": 0.0}, "--lr")):
        with pytest.raises(ConfigError, match=flag):
            verify_dataset(toy / "nowhere", replace(RECIPE, **change), protected_dir=toy / "same")
    with pytest.raises(ConfigError, match="--max-per-class"):
        verify_dataset(toy / "data", RECIPE, protected_dir=toy / "same", max_per_class=1)


def test_a_run_whose_clean_model_learns_nothing_says_so(toy, monkeypatch, tmp_path):
    """Clean at chance: no score can be read; the verdict says why and the JSON stays valid (no NaN)."""
    from ucprotect import verify

    monkeypatch.setattr(verify, "train_victim", lambda *a, **k: [1 / 3])
    report, samples = verify_dataset(toy / "data", RECIPE, protected_dir=toy / "same", test_fraction=0.3)
    assert report.verdict().startswith("Cannot tell") and report.rows()[1]["score"] is None
    write_report_files(report, samples, tmp_path / "r.json", None)
    assert json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(c))["runs"][1]["score"] is None


def test_split_deterministic_and_stratified():
    labels = [0] * 10 + [1] * 20
    a = stratified_split(labels, 0.2, seed=1)
    assert a == stratified_split(labels, 0.2, seed=1)
    test = a[1]
    assert sum(labels[i] == 0 for i in test) == 2 and sum(labels[i] == 1 for i in test) == 4
    assert not set(a[0]) & set(test)


def test_cluster_labels_deterministic():
    names = ["cat", "dog", "car", "truck", "apple", "pear"]
    enc = lambda texts: torch.nn.functional.normalize(torch.tensor([[float(len(t)), float(t.count("a")), 1.0] for t in texts]), dim=-1)
    a = cluster_labels(names, 3, enc, seed=0)
    assert a == cluster_labels(names, 3, enc, seed=0)
    assert len(set(a)) == 3 and a[0] == 0


@pytest.mark.parametrize("defense", ["jpeg:30", "jpeg:30:444", "grayscale", "blur:1.0", "downup:0.5"])
def test_defenses_change_images(defense):
    rng = np.random.default_rng(0)
    x = torch.from_numpy((rng.random((2, 3, 32, 32)) * 255).astype(np.uint8))
    y = apply_defense(defense, x)
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert (y.float() - x.float()).abs().mean() > 1
    if defense == "grayscale":
        assert torch.equal(y[:, 0], y[:, 1])


def test_jpeg_444_keeps_chroma_detail_that_420_averages_away():
    # a one-pixel red/green checkerboard: 4:2:0 keeps a quarter-resolution chroma plane, 4:4:4 all of it
    x = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 == 0
    x[0, 0][checker], x[0, 1][~checker] = 200, 200
    err = {s: (apply_defense(f"jpeg:95{s}", x).float() - x.float()).abs().mean() for s in ("", ":420", ":444")}
    assert err[""] == err[":420"] and err[":444"] < err[":420"] / 2


def test_defense_names_are_checked_and_extra_defenses_register():
    from ucprotect import verify
    from ucprotect.errors import ConfigError
    from ucprotect.verify import parse_defenses, register_defense

    assert parse_defenses(["jpeg:75:444,blur", "all"])[:3] == ["jpeg:75:444", "blur", "jpeg:75"]
    for bad in ("jpeg:75:422", "jpeg:high", "sharpen", "blur:x"):
        with pytest.raises((ConfigError, ValueError)):
            parse_defenses([bad])
    register_defense("negate", lambda images, arg: 255 - images)
    try:
        assert parse_defenses(["negate"]) == ["negate"]
        assert torch.equal(apply_defense("negate", torch.zeros(1, 3, 2, 2, dtype=torch.uint8)), torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    finally:
        verify._EXTRA_DEFENSES.pop("negate")


def test_heavy_augmentation_crops_jitters_and_cuts_out():
    from ucprotect.verify import _augment

    x = torch.full((4, 3, 32, 32), 0.5)
    x[:, :, :, :16] = 0.9  # left half bright: a resized crop moves the edge
    g = torch.Generator().manual_seed(0)
    heavy = _augment(x.clone(), g, heavy=True)
    assert heavy.shape == x.shape and heavy.min() >= 0 and heavy.max() <= 1
    for img in heavy:  # a cut-out square of zeros (1/3 of the side) in every image
        zero_rows = (img.sum(0) == 0).sum(1)
        assert (zero_rows >= 32 // 3).sum() >= 32 // 3
    assert not torch.allclose(heavy, _augment(x.clone(), torch.Generator().manual_seed(0), heavy=False))


def test_mixup_and_heavyaug_runs_train_deterministically():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(24, 3, 16, 16, generator=g) * 255).byte()
    y = torch.arange(24) % 2
    recipe = Recipe(victim="small-cnn", image_size=16, epochs=2, batch_size=8, lr=0.05)
    from ucprotect.verify import train_victim

    for defense in ("mixup", "heavyaug"):
        a = train_victim(x, y, x[:8], y[:8], 2, recipe, defense)
        assert len(a) == 2 and a == train_victim(x, y, x[:8], y[:8], 2, recipe, defense)
    plain = train_victim(x, y, x[:8], y[:8], 2, recipe, "none")
    assert len(plain) == 2


def test_bf16_recipe_trains_in_bf16_on_the_cpu(monkeypatch):
    """``Recipe.bf16`` runs the victim under bf16 autocast on the CPU too (fast on AMX units); by default the
    CPU stays fp32, so CPU results do not change."""
    from ucprotect import verify

    seen = []

    def create(*args):
        model = create_victim(*args)
        model.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
        return model

    monkeypatch.setattr(verify, "create_victim", create)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(16, 3, 16, 16, generator=g) * 255).byte()
    y = torch.arange(16) % 2
    recipe = Recipe(victim="small-cnn", image_size=16, epochs=1, batch_size=8, lr=0.05)
    for bf16, dtype in ((None, torch.float32), (True, torch.bfloat16)):
        seen.clear()
        accs = verify.train_victim(x, y, x[:8], y[:8], 2, replace(recipe, bf16=bf16), "none")
        assert len(accs) == 1 and 0 <= accs[0] <= 1 and seen and set(seen) == {dtype}


def test_victim_training_leaves_the_callers_cudnn_setting_alone():
    """Victims switch cuDNN autotuning on for their fixed shapes on a GPU, and back off afterwards, even on error."""
    from ucprotect.verify import _cudnn_autotune

    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with _cudnn_autotune(True):
            assert torch.backends.cudnn.benchmark
        assert not torch.backends.cudnn.benchmark
        with pytest.raises(KeyboardInterrupt), _cudnn_autotune(True):
            raise KeyboardInterrupt
        assert not torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True  # a caller who turned it on keeps it on
        with _cudnn_autotune(False):
            assert torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


@pytest.mark.parametrize("name", list_victims())
def test_every_victim_maps_images_to_class_logits(name):
    """Each registered victim takes a batch of 32 px images to one logit per class; resnet18-w16 is ResNet-18
    module for module at a quarter of the width (about a sixteenth of the parameters)."""
    model = create_victim(name, 7, 32).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    if name == "resnet18-w16":
        full = create_victim("resnet18", 7, 32)
        assert len(list(model.modules())) == len(list(full.modules()))
        assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in full.parameters()) / 10
