import torch

from ucprotect.generator import GeneratorConfig, create_generator
from ucprotect.grouping import assign_distinct, folder_sample


def test_groups_get_distinct_keys_with_unlike_textures():
    keys = torch.eye(6)  # six concepts; two groups sit nearest concept 0 and 1
    groups = torch.tensor([[1.0, 0.2, 0.1, 0, 0, 0], [0.3, 1.0, 0.0, 0.25, 0, 0]])
    assert assign_distinct(groups, keys).tolist() == [0, 1]
    tex = torch.eye(6)
    tex[0, 1] = tex[1, 0] = 0.9  # concepts 0 and 1 happen to draw look-alike textures
    chosen = assign_distinct(groups, keys, tex, candidates=3)
    assert chosen[0] == 0 and chosen[1] == 3  # the second group takes its next-nearest key with another texture
    assert len(set(chosen.tolist())) == 2


def test_texture_similarity_sees_frequency_orientation_and_colour():
    g = create_generator(GeneratorConfig(num_keys=4, embed_dim=8))
    with torch.no_grad():
        g.freq.copy_(torch.zeros(4, 1))  # all at the middle of the band
        g.angle.copy_(torch.tensor([[0.0], [0.0], [0.0], [1.2]]))
        g.colour.copy_(torch.tensor([[[3.0, 3, 3]], [[-3.0, -3, -3]], [[3.0, 3, -3]], [[3.0, 3, 3]]]))
    s = g.texture_similarity()
    assert torch.allclose(s.diag(), torch.ones(4))
    assert s[0, 1] > 0.99  # opposite colours = the same grating shifted by half a period
    assert 0.2 < s[0, 2] < 0.5  # same grating, colour signs differ in one channel
    assert s[0, 3] < 0.01  # other orientation


def test_texture_similarity_counts_mirror_images_as_alike():
    import math

    g = create_generator(GeneratorConfig(num_keys=2, embed_dim=8))
    with torch.no_grad():
        g.freq.copy_(torch.zeros(2, 1))
        g.angle.copy_(torch.tensor([[0.5], [math.pi - 0.5]]))  # left-right mirror images of each other
        g.colour.copy_(torch.full((2, 1, 3), 3.0))
    assert g.texture_similarity(mirror=False)[0, 1] < 0.01
    assert g.texture_similarity()[0, 1] > 0.99  # a victim trained with random flips sees both as one


def test_folder_sample_is_even_and_bounded():
    from pathlib import Path

    rel = [Path(f"a/{i:03}.jpg") for i in range(100)] + [Path("b/x.jpg")]
    idx = folder_sample(rel, 5)
    assert [rel[i].name for i in idx if rel[i].parent.name == "a"] == ["000.jpg", "025.jpg", "050.jpg", "074.jpg", "099.jpg"]
    assert rel[idx[-1]] == Path("b/x.jpg") and len(idx) == 6


def test_all_keys_as_candidates_give_the_most_distinct_textures():
    """With every free key a candidate, ten folders get textures further apart than among their 16 nearest
    concepts (the default), and the folder served first still gets its nearest concept."""
    g = create_generator(GeneratorConfig(seed=0))
    tex = g.texture_similarity()
    keys = torch.nn.functional.normalize(torch.randn(1000, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    groups = torch.nn.functional.normalize(torch.randn(10, 16, generator=torch.Generator().manual_seed(1)), dim=-1)

    def worst_pair(chosen):
        s = tex[chosen][:, chosen].clone()
        s.fill_diagonal_(0)
        return float(s.max())

    spread, near = assign_distinct(groups, keys, tex, candidates=None), assign_distinct(groups, keys, tex)
    assert len(set(spread.tolist())) == 10 and worst_pair(spread) < worst_pair(near)
    first = int((groups @ keys.T).max(1).values.argmax())
    assert spread[first] == int((groups[first] @ keys.T).argmax())


def test_key_candidates_reach_folder_and_cluster_key_choice():
    """``assign_keys(key_candidates=None)`` draws folders' and clusters' keys from all concepts, as
    ``assign_distinct(candidates=None)`` does on the groups' mean embeddings (protect's --key-candidates 0)."""
    from pathlib import Path

    from ucprotect.grouping import assign_keys

    g = create_generator(GeneratorConfig(seed=0))
    tex = g.texture_similarity()
    keys = torch.nn.functional.normalize(torch.randn(1000, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    emb = torch.nn.functional.normalize(torch.randn(30, 16, generator=torch.Generator().manual_seed(2)), dim=-1)
    paths = [Path(f"f{i % 10}/{i}.jpg") for i in range(30)]
    coarse = torch.arange(1000)
    means = torch.nn.functional.normalize(torch.stack([emb[i::10].mean(0) for i in range(10)]), dim=-1)
    for candidates in (None, 16):
        chosen = assign_keys(emb, paths, "folder", keys, coarse, texture_similarity=tex, key_candidates=candidates)
        expected = assign_distinct(means, keys, tex, candidates)
        assert chosen.keys.tolist() == [int(expected[i % 10]) for i in range(30)]
    spread = assign_keys(emb, paths, "folder", keys, coarse, texture_similarity=tex, key_candidates=None)
    near = assign_keys(emb, paths, "folder", keys, coarse, texture_similarity=tex)
    assert spread.keys.tolist() != near.keys.tolist()
    clustered = assign_keys(emb, paths, "cluster", keys, coarse, clusters=5, texture_similarity=tex, key_candidates=None)
    assert len(set(clustered.keys.tolist())) == 5


def test_silhouette_count_finds_the_collections_groups():
    """``--group-by cluster``'s default count: six tight concept groups of uneven size are found as six
    clusters, where round(sqrt n) would have split them into 13; each group then carries one key. (With more
    groups single-start k-means sometimes merges two: benchmarks/silhouette_fixtures.py.)"""
    from pathlib import Path

    from ucprotect.clustering import silhouette_count
    from ucprotect.grouping import assign_keys

    gen = torch.Generator().manual_seed(3)
    centres = torch.nn.functional.normalize(torch.randn(6, 32, generator=gen), dim=-1)
    sizes = [15, 25, 30, 40, 30, 20]
    truth = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    emb = torch.nn.functional.normalize(centres[truth] + 0.05 * torch.randn(len(truth), 32, generator=gen), dim=-1)
    assert silhouette_count(emb) == 6
    assert silhouette_count(emb[:1]) == 1 and silhouette_count(emb[:2]) == 2  # too few photos to score a split
    keys = torch.nn.functional.normalize(torch.randn(1000, 32, generator=gen), dim=-1)
    paths = [Path(f"{i}.jpg") for i in range(len(truth))]
    chosen = assign_keys(emb, paths, "cluster", keys, torch.arange(1000))
    assert len(set(chosen.keys.tolist())) == 6
    for g in range(6):  # one key per true group
        assert len(set(chosen.keys[truth == g].tolist())) == 1


def test_auto_grouping_picks_folders_then_clusters_then_single_photos():
    """``auto`` as measured (RESULTS.md, session 39): folders when there are two or more, a flat folder of 8+
    photos clustered, fewer photos keyed one by one."""
    from pathlib import Path

    import pytest

    from ucprotect.errors import ConfigError
    from ucprotect.grouping import resolve_mode

    assert resolve_mode("auto", [Path("a/1.jpg"), Path("b/2.jpg")]) == "folder"
    assert resolve_mode("auto", [Path(f"{i}.jpg") for i in range(8)]) == "cluster"
    assert resolve_mode("auto", [Path(f"{i}.jpg") for i in range(7)]) == "none"
    assert resolve_mode("none", [Path("a/1.jpg"), Path("b/2.jpg")]) == "none"
    with pytest.raises(ConfigError, match="--group-by"):
        resolve_mode("kind", [])
