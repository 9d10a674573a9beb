"""CLIP through ``transformers.CLIPModel``: the paper's own backbone, for users who have the weights."""
from __future__ import annotations

import torch

from ..errors import BackboneError
from . import Backbone, register_backbone

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class CLIPBackbone(Backbone):
    mean = CLIP_MEAN
    std = CLIP_STD

    def __init__(self, name_or_path: str = DEFAULT_CLIP):
        super().__init__()
        from transformers import CLIPModel, CLIPTokenizer

        try:
            self.model = CLIPModel.from_pretrained(name_or_path).eval()
            self.tokenizer = CLIPTokenizer.from_pretrained(name_or_path)
        except OSError as e:
            raise BackboneError(
                f"cannot load CLIP {name_or_path!r}: it is neither a local folder with a saved CLIPModel and "
                "tokenizer nor downloadable now (offline?). Download it once with internet access "
                "(huggingface-cli download <name>) or pass clip:/path/to/folder. Detail: "
                + str(e).splitlines()[0]
            ) from None
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.spec = f"clip:{name_or_path}"
        self.embed_dim = self.model.config.projection_dim
        self.image_size = self.model.config.vision_config.image_size

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=pixels)
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        out = self.model.get_text_features(**batch)
        out = out if isinstance(out, torch.Tensor) else out.pooler_output
        return torch.nn.functional.normalize(out.float(), dim=-1)

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}


@register_backbone("clip")
def _create_clip(arg: str | None, **_) -> CLIPBackbone:
    return CLIPBackbone(arg or DEFAULT_CLIP)
