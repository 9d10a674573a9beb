import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ucprotect.cli import app

runner = CliRunner()


def _img(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(path)


def test_missing_weights_message(tmp_path):
    _img(tmp_path / "in" / "a.png")
    r = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--weights", str(tmp_path / "nope.safetensors")])
    assert r.exit_code == 1
    assert "weights file not found" in r.output and "nope.safetensors" in r.output
    assert "Traceback" not in r.output


def test_shipped_weights_not_installed_message(tmp_path, monkeypatch):
    """No shipped weights anywhere we look: say where we looked and how to fix it, not just 'not found'."""
    import ucprotect.weights as weights

    monkeypatch.setattr(weights, "default_weights_path", lambda: tmp_path / "site-packages" / weights.DEFAULT_WEIGHTS_NAME)
    monkeypatch.setattr(weights, "installed_weights_dirs", lambda: [tmp_path / "prefix" / "share" / "ucprotect" / "weights"])
    _img(tmp_path / "in" / "a.png")
    r = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    out = " ".join(r.output.split())  # rich wraps long lines
    assert "shipped weights are missing" in out and "pip install -e ." in out and "--weights" in out
    assert "prefix" in out


def test_shipped_weights_found_where_a_wheel_installs_them(tmp_path, monkeypatch):
    """A wheel puts weights/*.safetensors under <prefix>/share/ucprotect/weights (pyproject's data-files):
    without a repository weights/ folder beside the package, that is where the default is found."""
    import sys
    import sysconfig

    import ucprotect.weights as weights

    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    data_files = pyproject["tool"]["setuptools"]["data-files"]
    assert data_files == {"share/ucprotect/weights": ["weights/*.safetensors"]}

    prefix = tmp_path / "env"
    installed = prefix / "share" / "ucprotect" / "weights" / weights.DEFAULT_WEIGHTS_NAME
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b"x")
    monkeypatch.setattr(weights, "__file__", str(tmp_path / "site-packages" / "ucprotect" / "weights.py"))
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *a, **k: str(prefix) if name == "data" else None)
    assert weights.default_weights_path() == installed
    installed.unlink()  # nowhere: the repository path, which the error message names
    assert weights.default_weights_path() == tmp_path / "site-packages" / "weights" / weights.DEFAULT_WEIGHTS_NAME


def test_corrupt_weights_message(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    _img(tmp_path / "in" / "a.png")
    r = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--weights", str(bad)])
    assert r.exit_code == 1 and "bad.safetensors" in r.output and "not a readable safetensors" in r.output


def test_missing_source_message(tmp_path):
    r = runner.invoke(app, ["protect", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--dry-run"])
    assert r.exit_code == 1 and "no such file or folder" in r.output


def test_protect_exit_code_nonzero_when_a_file_fails(tmp_path, weights_file):
    _img(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.jpg").write_bytes(b"")
    r = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--weights", str(weights_file),
                            "--device", "cpu", "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 1, r.output
    assert "b.jpg" in r.output and "empty" in r.output
    assert (tmp_path / "o" / "a.png").exists() and (tmp_path / "r.json").exists()


def test_report_and_plot_paths_are_checked_before_any_work(tmp_path, weights_file):
    """A --report or --plot that names a folder is refused before protecting or training (a verify run can take
    an hour, and its numbers would be lost at the end); a report in a folder not yet made gets the folder."""
    _img(tmp_path / "in" / "c" / "a.png")
    (tmp_path / "taken").mkdir()
    base = ["protect", str(tmp_path / "in"), "--weights", str(weights_file), "--device", "cpu"]
    r = runner.invoke(app, base + ["--out", str(tmp_path / "o"), "--report", str(tmp_path / "taken")])
    assert r.exit_code == 1 and "--report" in r.output and "is a folder" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()
    r = runner.invoke(app, base + ["--out", str(tmp_path / "o2"), "--report", str(tmp_path / "new" / "deeper" / "r.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "new" / "deeper" / "r.json").read_text())["summary"]["done"] == 1
    r = runner.invoke(app, base + ["--out", str(tmp_path / "o3"), "--keys", str(tmp_path / "taken")])
    assert r.exit_code == 1 and "--keys" in r.output and "is a folder" in r.output and not (tmp_path / "o3").exists()
    for option in ("--report", "--plot"):
        r = runner.invoke(app, ["verify", str(tmp_path / "in"), "--weights", str(weights_file), "--device", "cpu", "--quick",
                                option, str(tmp_path / "taken")])
        assert r.exit_code == 1 and option in r.output and "is a folder" in r.output and "epoch" not in r.output
    r = runner.invoke(app, ["train", str(tmp_path / "in"), "--out", str(tmp_path / "run"), "--export", str(tmp_path / "taken")])
    assert r.exit_code == 1 and "--export" in r.output and "is a folder" in r.output and not (tmp_path / "run").exists()


def test_file_names_print_as_they_are(tmp_path, weights_file):
    """Rich reads [style] markup and :emoji: codes in what it prints; names of files and folders must not be."""
    _img(tmp_path / "in" / "x[red]y" / "a.png")
    bad = tmp_path / "in" / "x[red]y" / "e[bold]:thumbs_up:.jpg"
    bad.write_bytes(b"")
    args = ["protect", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--weights", str(weights_file), "--device", "cpu"]
    r = runner.invoke(app, args, env={"COLUMNS": "500"})
    assert r.exit_code == 1 and f"failed {bad}: the file is empty" in r.output, r.output
    r = runner.invoke(app, ["protect", str(bad) + "x", "--out", str(tmp_path / "o2")], env={"COLUMNS": "500"})
    assert r.exit_code == 1 and f"error: {bad}x: no such file" in r.output, r.output


def test_photos_in_formats_not_read_are_counted_and_warned_about(tmp_path, weights_file):
    """An iPhone's HEIC or a camera's raw file is not read; the run must say so, not pass it over quietly
    (a user could publish it believing it protected). Other files are counted, without a warning."""
    _img(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "in" / "notes.txt").write_text("hello")
    report = tmp_path / "r.json"
    r = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--weights", str(weights_file),
                            "--device", "cpu", "--report", str(report)], env={"COLUMNS": "500"})
    assert r.exit_code == 0, r.output
    assert "2 not read, left as they are (.heic 1, .txt 1)" in r.output
    assert "warning: 1 photo was NOT protected (.heic 1)" in r.output
    assert "Convert it (e.g. to JPEG)" in r.output
    assert json.loads(report.read_text())["summary"]["left_out"] == {".heic": 1, ".txt": 1}


def test_ctrl_c_says_how_to_go_on_for_each_command(tmp_path, monkeypatch, train_images):
    """protect resumes by re-running; train only with --resume (the old shared message said re-run)."""
    from ucprotect.training import Trainer

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run", interrupt)
    r = runner.invoke(app, ["train", str(train_images), "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "8",
                            "--image-size", "48", "--device", "cpu"], env={"COLUMNS": "500"})
    assert r.exit_code == 130 and "interrupted: the last checkpoint" in r.output and "--resume" in r.output, r.output


def test_no_gpu_message(tmp_path, weights_file):
    import torch

    if torch.cuda.is_available():
        return
    _img(tmp_path / "in" / "a.png")
    r = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--weights", str(weights_file), "--device", "cuda"])
    assert r.exit_code == 1 and "no CUDA GPU" in r.output


def test_keys_file_message_and_summary(tmp_path, weights_file):
    _img(tmp_path / "in" / "x" / "a.png")
    _img(tmp_path / "in" / "y" / "b.png")
    keys = tmp_path / "keys.json"
    args = ["protect", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--weights", str(weights_file), "--device", "cpu",
            "--keys", str(keys)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "0 from the keys file, 2 new" in r.output and keys.exists()
    keys.write_text("garbage")
    r = runner.invoke(app, args + ["--overwrite"])
    assert r.exit_code == 1 and "keys.json" in r.output and "unreadable keys file" in r.output and "Traceback" not in r.output


def test_help_does_not_load_torch():
    """`ucprotect --help` and the package import stay light: torch loads when a command runs (seconds on
    a small machine), and the lazy API still resolves."""
    import subprocess
    import sys

    code = ("import sys, ucprotect, ucprotect.cli; assert 'torch' not in sys.modules, 'torch imported'; "
            "ucprotect.cli.app(['--help'], standalone_mode=False); assert 'torch' not in sys.modules; "
            "from ucprotect import Protector, protect_folder; assert 'torch' in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "protect" in out.stdout and "verify" in out.stdout


def test_train_defaults_match_the_training_config():
    import inspect

    from ucprotect.cli.train import train
    from ucprotect.training import TrainConfig

    params = inspect.signature(train).parameters
    for name in ("min_cycles", "max_cycles", "coarse_groups", "image_size", "steps", "lr"):
        assert params[name].default == getattr(TrainConfig(), name), name
