import pytest
import torch

from ucprotect import Protector, load_weights
from ucprotect.errors import ConfigError, DataError
from ucprotect.training import TrainConfig, Trainer


def test_checkpoint_resume_repeats_next_step(trainer_factory, tmp_path):
    a = trainer_factory(out=tmp_path / "a", steps=3)
    a.train_step()
    a.train_step()
    a.save_checkpoint()
    expected = a.train_step()["loss"]
    b = trainer_factory(out=tmp_path / "b", steps=3)
    b.load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert b.step == 2
    assert b.train_step()["loss"] == pytest.approx(expected, rel=1e-5)


def test_resume_with_other_settings_is_refused(trainer_factory, tmp_path):
    a = trainer_factory(out=tmp_path / "a")
    a.save_checkpoint()
    b = trainer_factory(out=tmp_path / "b", lr=0.5)
    with pytest.raises(ConfigError, match="other settings"):
        b.load_checkpoint(tmp_path / "a" / "checkpoint.pt")


def test_band_reaches_weights_and_pre_band_checkpoint_is_refused(trainer_factory, tmp_path):
    a = trainer_factory(out=tmp_path / "a", min_cycles=6.0, max_cycles=9.0)
    cycles = a.generator.cycles().detach()
    assert 6.0 <= float(cycles.min()) and float(cycles.max()) <= 9.0
    assert load_weights(a.export(tmp_path / "a.safetensors")).config.min_cycles == 6.0
    a.save_checkpoint()
    state = torch.load(a.checkpoint_path(), weights_only=False)
    for k in ("min_cycles", "max_cycles"):  # as written before the band was a setting (8-16 then)
        del state["config"][k]
    torch.save(state, a.checkpoint_path())
    with pytest.raises(ConfigError, match="min_cycles"):
        trainer_factory(out=tmp_path / "b").load_checkpoint(a.checkpoint_path())


def test_paper_objective_steps_lower_its_loss(trainer_factory, tmp_path):
    # the paper's generator (resnet): the concept-texture one has only a grating's frequency, angle, phase and
    # colour per key, and its paper loss stays flat within float noise over a few steps
    tr = trainer_factory(out=tmp_path / "p", objective="paper", arch="resnet", batch_size=4, lr=0.003, steps=3)
    batch = tr.batch(0)
    from ucprotect.budget import epsilon_from_255

    with torch.no_grad():
        before = float(tr.objective.loss(tr.generator, batch, epsilon_from_255(8))[0])
    for _ in range(3):  # the same handful of images each step
        loss, _ = tr.objective.loss(tr.generator, batch, epsilon_from_255(8))
        tr.optimizer.zero_grad()
        loss.backward()
        tr.optimizer.step()
    with torch.no_grad():
        after = float(tr.objective.loss(tr.generator, batch, epsilon_from_255(8))[0])
    assert after < 0.5 * before  # 0.17 -> 0.05 when written


def test_export_round_trips_through_protect(weights_file):
    bundle = load_weights(weights_file)
    assert bundle.metadata["objective"] == "shortcut" and bundle.backbone == "conse"
    assert bundle.config.num_keys == 1000 and len(bundle.concept_names) == 1000
    p = Protector(bundle, device="cpu")
    d = p.perturbation(torch.rand(1, 3, 40, 60), key=3)
    assert d.shape == (1, 3, 40, 60) and float(d.abs().max()) <= 8 / 255 + 1e-7


def test_empty_data_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    tr = Trainer.__new__(Trainer)
    from ucprotect.training import load_training_images

    with pytest.raises(DataError, match="readable images"):
        load_training_images(tmp_path / "empty", 32, None, 0)
    with pytest.raises(DataError, match="not a folder"):
        load_training_images(tmp_path / "nope", 32, None, 0)


@pytest.mark.parametrize("change, flag", [({"image_size": 0}, "--image-size"), ({"lr": 0.0}, "--lr"),
                                          ({"batch_size": 0}, "--batch-size"), ({"max_images": 0}, "--max-images"),
                                          ({"epsilon": 0.0}, "--epsilon"), ({"min_cycles": 10, "max_cycles": 5}, "--min-cycles")])
def test_impossible_settings_are_refused_before_the_models_are_built(tmp_path, change, flag):
    """--image-size 0 raised ZeroDivisionError and --lr 0 trained nothing for the whole run."""
    with pytest.raises(ConfigError, match=flag):
        Trainer(tmp_path / "data", tmp_path / "run", TrainConfig(**change))


def test_resume_without_a_checkpoint_says_so(trainer_factory, tmp_path):
    tr = trainer_factory(out=tmp_path / "fresh")
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        tr.load_checkpoint(tr.checkpoint_path())


def test_unknown_objective_lists_valid():
    from ucprotect.objectives import create_objective

    with pytest.raises(ConfigError, match="valid objectives: paper, shortcut"):
        create_objective("magic")


def test_torchrun_two_processes_train_and_export(train_images, tmp_path):
    """Data-parallel training as documented: torchrun, two CPU processes (gloo), rank 0 exports."""
    import subprocess
    import sys

    out = tmp_path / "w.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", "-m", "ucprotect",
           "train", str(train_images), "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "8",
           "--image-size", "48", "--coarse-groups", "16", "--device", "cpu", "--export", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    meta = load_weights(out).metadata
    assert meta["train_steps"] == 2 and meta["train_machine"].endswith("x2")


def test_loaded_weights_survive_the_file_being_overwritten_in_place(weights_file, tmp_path):
    copy = tmp_path / "w.safetensors"
    copy.write_bytes(weights_file.read_bytes())
    bundle = load_weights(copy)
    keys, backbone = bundle.coarse_keys.clone(), {k: v.clone() for k, v in bundle.backbone_tensors.items()}
    with open(copy, "r+b") as f:  # what `cp other.safetensors w.safetensors` does: same file, new bytes
        f.write(b"\xff" * len(weights_file.read_bytes()))
    assert torch.equal(bundle.coarse_keys, keys)
    assert all(torch.equal(bundle.backbone_tensors[k], v) for k, v in backbone.items())


def test_saving_the_same_weights_twice_gives_the_same_bytes(weights_file, tmp_path):
    """safetensors writes metadata in hash order; save_weights sorts it, so a re-export has the same SHA-256."""
    from ucprotect.weights import save_weights

    b = load_weights(weights_file)
    args = (b.generator, b.backbone, b.backbone_tensors, b.concept_names, b.coarse_keys,
            {k: v for k, v in b.metadata.items() if k not in ("format", "format_version", "generator_config", "backbone", "concept_names")})
    one, two = save_weights(tmp_path / "1.safetensors", *args), save_weights(tmp_path / "2.safetensors", *args)
    assert one.read_bytes() == two.read_bytes()
    again = load_weights(two)
    assert again.metadata == b.metadata and torch.equal(again.coarse_keys, b.coarse_keys)
