"""A tiny random-weight CLIP (text and vision) in the local hub cache: the hallucination score's loading
path, exercised offline exactly as a real checkpoint is (``CLIPModel`` / ``CLIPProcessor.from_pretrained``).

Random weights show the plumbing — the repo loads, the crop is scored, the score is a probability that
depends on the fill's pixels and not on the rest — and nothing about semantics: whether a fill "looks
like an object" needs a trained model (the default ``openai/clip-vit-base-patch32``).
"""

from __future__ import annotations

from pathlib import Path

TINY_CLIP_REPO = "fluxaudit-demo/clip-tiny"
IMAGE_SIZE = 32


def save_clip_repo(folder: Path, seed: int) -> None:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from .builder import _clip_tokenizer_files

    torch.manual_seed(seed)
    vocab, bos, eos = _clip_tokenizer_files(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=77)
    text = {"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": bos, "eos_token_id": eos,
            "pad_token_id": eos}  # fmt: skip
    vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": IMAGE_SIZE, "patch_size": 8}  # fmt: skip
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    model.save_pretrained(folder)
    images = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
