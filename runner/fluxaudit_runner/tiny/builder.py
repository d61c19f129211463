"""Build a tiny random-weight FLUX.1-Fill, its GGUF transformers, and a hub cache.

The demo and the tests need the whole production path — ``hf_hub_download`` of a
GGUF file, ``FluxTransformer2DModel.from_single_file`` with a GGUF quantization
config, ``FluxFillPipeline`` with T5 + CLIP + VAE — on a machine with no GPU and
no network.  Everything here is deterministic: the same seed gives the same bytes.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .gguf_export import QUANT_TYPES, write_transformer_gguf
from .hubcache import publish_folder

TINY_BASE_REPO = "fluxaudit-demo/FLUX.1-Fill-tiny"
TINY_GGUF_REPO = "fluxaudit-demo/FLUX.1-Fill-tiny-GGUF"
DEMO_SIZE = 128
#: file names follow the public repo's pattern, so the spec's defaults only swap repo ids.
GGUF_FILES = {label: f"flux1-fill-tiny-{label}.gguf" for label in QUANT_TYPES}
MARKER = "fluxaudit-tiny.json"
BUILDER_VERSION = 3  # 3: the tiny CLIP for the hallucination score

_T5_CORPUS = (
    "empty ground nothing here just the natural ground surface continuing seamlessly\n"
    "a photo of a red chair on a wooden floor in a bright room\n"
    "grass sand gravel stone concrete asphalt tiles carpet wood snow water\n"
    "remove the object and fill the hole with matching background texture\n"
)


@dataclass(frozen=True)
class TinyModel:
    """Where a built tiny model lives."""

    root: Path
    hub_cache: Path
    base_repo: str
    gguf_repo: str
    gguf_files: dict[str, str]
    image: Path
    mask: Path

    @property
    def hf_home(self) -> Path:
        return self.root / "hf-home"


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def _byte_level_alphabet() -> list[str]:
    """GPT-2's byte -> printable character table (transformers 5 no longer exports it)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for _, c in sorted(zip(printable, codes, strict=True))]


def _clip_tokenizer_files(folder: Path) -> tuple[int, int, int]:
    """A byte-level BPE vocab with no merges: every byte is a token, which is all
    the pipeline needs; returns (vocab size, bos id, eos id)."""
    chars = _byte_level_alphabet()
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    bos, eos = len(vocab), len(vocab) + 1
    vocab["<|startoftext|>"] = bos
    vocab["<|endoftext|>"] = eos
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, sort_keys=True))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return len(vocab), bos, eos


def _t5_tokenizer_files(folder: Path) -> None:
    """Train a tiny sentencepiece model in memory (no file paths end up in the
    model proto, so the bytes do not depend on where it was built)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_T5_CORPUS.splitlines() * 4),
        model_writer=model,
        vocab_size=64,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model.getvalue())
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 512}, sort_keys=True)
    )


@dataclass(frozen=True)
class Architecture:
    """Sizes of every component; TINY for the demo and tests, FULL for GPU benchmarks."""

    clip_hidden: int
    clip_intermediate: int
    clip_layers: int
    clip_heads: int
    t5_d_model: int
    t5_d_kv: int
    t5_d_ff: int
    t5_layers: int
    t5_heads: int
    t5_vocab: int | None  # None: the tokenizer's size
    vae_channels: tuple[int, int, int, int]
    vae_layers_per_block: int
    vae_groups: int
    layers: int
    single_layers: int
    heads: int


TINY = Architecture(
    clip_hidden=32, clip_intermediate=64, clip_layers=2, clip_heads=2,
    t5_d_model=32, t5_d_kv=16, t5_d_ff=64, t5_layers=2, t5_heads=2, t5_vocab=None,
    vae_channels=(8, 8, 16, 16), vae_layers_per_block=1, vae_groups=8,
    layers=2, single_layers=2, heads=2,
)  # fmt: skip
#: FLUX.1-Fill-dev's shapes: CLIP-L, T5-XXL, the 16-channel VAE, 19 + 38 blocks of width 3072.
FULL = Architecture(
    clip_hidden=768, clip_intermediate=3072, clip_layers=12, clip_heads=12,
    t5_d_model=4096, t5_d_kv=64, t5_d_ff=10240, t5_layers=24, t5_heads=64, t5_vocab=32128,
    vae_channels=(128, 256, 512, 512), vae_layers_per_block=2, vae_groups=32,
    layers=19, single_layers=38, heads=24,
)  # fmt: skip


def save_base_repo(
    base: Path, seed: int, arch: Architecture = TINY, device: str = "cpu", transformer_weights: bool = True
) -> torch.nn.Module:
    """Write the diffusers-layout base repo with random weights; return the transformer
    (bf16; with ``transformer_weights`` its weights are saved too, as in the real repo)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    _seed_everything(seed)
    clip_vocab, bos, eos = _clip_tokenizer_files(base / "tokenizer")
    clip_tok = CLIPTokenizer.from_pretrained(base / "tokenizer", model_max_length=77)
    clip_tok.save_pretrained(base / "tokenizer")
    clip_cfg = CLIPTextConfig(
        vocab_size=clip_vocab,
        hidden_size=arch.clip_hidden,
        intermediate_size=arch.clip_intermediate,
        num_hidden_layers=arch.clip_layers,
        num_attention_heads=arch.clip_heads,
        max_position_embeddings=77,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
        projection_dim=arch.clip_hidden,
    )
    with torch.device(device):
        CLIPTextModel(clip_cfg).to(torch.bfloat16 if arch is not TINY else torch.float32).save_pretrained(
            base / "text_encoder"
        )

    _t5_tokenizer_files(base / "tokenizer_2")
    t5_tok = AutoTokenizer.from_pretrained(base / "tokenizer_2")
    t5_tok.save_pretrained(base / "tokenizer_2")
    t5_cfg = T5Config(
        vocab_size=arch.t5_vocab or len(t5_tok),
        d_model=arch.t5_d_model,
        d_kv=arch.t5_d_kv,
        d_ff=arch.t5_d_ff,
        num_layers=arch.t5_layers,
        num_heads=arch.t5_heads,
        relative_attention_num_buckets=8 if arch is TINY else 32,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    with torch.device(device):
        t5 = T5EncoderModel(t5_cfg)
        (t5 if arch is TINY else t5.to(torch.bfloat16)).save_pretrained(base / "text_encoder_2")
        del t5

    with torch.device(device):
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=arch.vae_channels,
            layers_per_block=arch.vae_layers_per_block,
            latent_channels=16,
            norm_num_groups=arch.vae_groups,
            sample_size=DEMO_SIZE if arch is TINY else 1024,
            scaling_factor=0.3611,
            shift_factor=0.1159,
            use_quant_conv=False,
            use_post_quant_conv=False,
        )
        vae.save_pretrained(base / "vae")

        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=384,
            out_channels=64,
            num_layers=arch.layers,
            num_single_layers=arch.single_layers,
            attention_head_dim=128,
            num_attention_heads=arch.heads,
            joint_attention_dim=t5_cfg.d_model,
            pooled_projection_dim=clip_cfg.hidden_size,
            guidance_embeds=True,
            axes_dims_rope=(16, 56, 56),
        )
    # Like the real repo: bf16 weights in the base repo, and the GGUF files quantized
    # from exactly those values, so the unquantized reference is the quants' source.
    transformer = transformer.to(torch.bfloat16)
    if transformer_weights:
        transformer.save_pretrained(base / "transformer")
    else:
        transformer.save_config(base / "transformer")

    FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256,
        base_shift=0.5,
        max_image_seq_len=4096,
        max_shift=1.15,
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
    ).save_pretrained(base / "scheduler")

    (base / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "FluxFillPipeline",
                "_diffusers_version": "0.42.1",
                "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "text_encoder_2": ["transformers", "T5EncoderModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "tokenizer_2": ["transformers", "T5TokenizerFast"],
                "transformer": ["diffusers", "FluxTransformer2DModel"],
                "vae": ["diffusers", "AutoencoderKL"],
            },
            indent=2,
            sort_keys=True,
        )
    )
    return transformer


def save_pipeline_folder(base: Path, seed: int) -> dict[str, torch.Tensor]:
    """The tiny base repo; returns the transformer's weights (bf16 values, as float32:
    the source the GGUF files are quantized from)."""
    transformer = save_base_repo(base, seed, TINY)
    return {k: v.detach().to(torch.float32).clone() for k, v in transformer.state_dict().items()}


#: where the demo's object sits (fractions of the side: left, top, right, bottom) and its colour
DEMO_BOX = (0.38, 0.42, 0.66, 0.80)
DEMO_COLOUR = (200, 30, 40)


def demo_image_and_mask(
    size: int = DEMO_SIZE, box: tuple[float, ...] = DEMO_BOX, colour: tuple[int, int, int] = DEMO_COLOUR
) -> tuple[Image.Image, Image.Image]:
    """A synthetic scene (sky, ground, an object to remove) and a mask over the object."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    horizon = 0.45
    sky = np.stack([0.45 + 0.3 * y, 0.65 + 0.2 * y, 0.95 - 0.1 * y], axis=-1)
    rng = np.random.default_rng(7)
    grain = rng.normal(0.0, 0.04, size=(size, size, 1)).astype(np.float32)
    ground = np.stack([0.45 + 0.1 * x, 0.36 + 0.05 * y, 0.22 + 0.0 * x], axis=-1) + grain
    rgb = np.where((y < horizon)[..., None], sky, ground)
    image = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = (int(size * f) for f in box)
    draw.rectangle((left, top, right, bottom), fill=colour)
    box = (left, top, right, bottom)
    mask = Image.new("L", (size, size), 0)
    pad = max(2, size // 32)
    ImageDraw.Draw(mask).rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), fill=255)
    return image, mask


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def build_tiny_model(root: Path, seed: int = 0, force: bool = False) -> TinyModel:
    """Build (or reuse) the tiny model under ``root``; returns where everything is."""
    root = Path(root)
    hub_cache = root / "hf-home" / "hub"
    model = TinyModel(
        root=root,
        hub_cache=hub_cache,
        base_repo=TINY_BASE_REPO,
        gguf_repo=TINY_GGUF_REPO,
        gguf_files=dict(GGUF_FILES),
        image=root / "assets" / "image.png",
        mask=root / "assets" / "mask.png",
    )
    marker = root / MARKER
    expected = {"builderVersion": BUILDER_VERSION, "seed": seed}
    if not force and marker.exists() and json.loads(marker.read_text()) == expected:
        return model
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)

    with tempfile.TemporaryDirectory(prefix="fluxaudit-tiny-") as tmp:
        work = Path(tmp)
        base = work / "base"
        state_dict = save_pipeline_folder(base, seed)
        publish_folder(hub_cache, TINY_BASE_REPO, base)

        ggufs = work / "gguf"
        ggufs.mkdir()
        for label, filename in GGUF_FILES.items():
            write_transformer_gguf(state_dict, label, ggufs / filename)
        publish_folder(hub_cache, TINY_GGUF_REPO, ggufs)

        from .clip import TINY_CLIP_REPO, save_clip_repo

        save_clip_repo(work / "clip", seed)
        publish_folder(hub_cache, TINY_CLIP_REPO, work / "clip")

    image, mask = demo_image_and_mask()
    model.image.parent.mkdir(parents=True, exist_ok=True)
    model.image.write_bytes(_png_bytes(image))
    model.mask.write_bytes(_png_bytes(mask))
    marker.write_text(json.dumps(expected, sort_keys=True))
    return model
