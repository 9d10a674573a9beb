import numpy as np
import pytest
import torch

from ucprotect.backbones import create_backbone, list_backbones
from ucprotect.backbones.conse import imagenet_class_names
from ucprotect.errors import BackboneError


@pytest.fixture(scope="module")
def conse(weights_file):
    from ucprotect.weights import load_weights

    b = load_weights(weights_file)
    return create_backbone(b.backbone, extra=b.backbone_tensors)


def test_conse_unit_vectors_and_ranks_cat(conse):
    skimage = pytest.importorskip("skimage.data")
    x = torch.from_numpy(skimage.chelsea()).permute(2, 0, 1)[None].float() / 255
    e = conse.encode_image(x)
    assert torch.allclose(e.norm(dim=-1), torch.ones(1), atol=1e-5)
    names = imagenet_class_names()
    top = (e @ conse.class_text_embeddings.T).topk(5).indices[0].tolist()
    assert any("cat" in names[i] for i in top), [names[i] for i in top]


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(BackboneError, match="valid backbones: clip, conse"):
        create_backbone("dinov9")
    assert list_backbones() == ["clip", "conse"]


def test_clip_loads_from_local_folder(tmp_path):
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    tok_dir = tmp_path / "tok"
    # a tiny BPE vocabulary: enough for CLIPTokenizer to load and tokenise
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 2, "c": 3, "t": 4, "a</w>": 5, "t</w>": 6, "ca": 7, "cat</w>": 8}
    tok_dir.mkdir()
    (tok_dir / "vocab.json").write_text(__import__("json").dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\n")
    tok = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"))
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=16),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                        image_size=32, patch_size=8), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(tmp_path / "clip")
    tok.save_pretrained(tmp_path / "clip")
    b = create_backbone(f"clip:{tmp_path / 'clip'}")
    assert b.embed_dim == 16 and b.image_size == 32
    e = b.encode_image(torch.rand(2, 3, 50, 40))
    t = b.encode_text(["a cat", "cat"])
    assert e.shape == (2, 16) and t.shape == (2, 16)
    assert torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_clip_offline_error_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="cannot load CLIP"):
        create_backbone(f"clip:{tmp_path / 'missing'}")
