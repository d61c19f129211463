"""Which block lists the compile check may shorten to three: only those whose blocks all trace alike.

The traces themselves (three blocks standing for all, scaled findings equal to a plain trace; a break
inside the blocks has every block traced) are in test_compile_check; here, without a trace, the choice
of lists, which is what keeps a block unlike the others from being left out of the trace."""

from __future__ import annotations

import copy
from typing import Any

import torch
from diffusers import FluxTransformer2DModel

from fluxaudit.results import TracedBlocks
from fluxaudit_runner.repeated_blocks import interchangeable, kept_blocks


def _transformer(double: int = 4, single: int = 5) -> FluxTransformer2DModel:
    return FluxTransformer2DModel(patch_size=1, in_channels=16, out_channels=16, num_layers=double,
                                  num_single_layers=single, attention_head_dim=8, num_attention_heads=2,
                                  joint_attention_dim=16, pooled_projection_dim=16, guidance_embeds=True,
                                  axes_dims_rope=(2, 2, 4))  # fmt: skip


def _lists(transformer: torch.nn.Module) -> list[str]:
    return sorted(interchangeable(transformer))


def test_lists_of_matching_blocks_are_kept_to_their_first_second_and_last_and_given_back_whole() -> None:
    transformer = _transformer()
    doubles, singles = transformer.transformer_blocks, transformer.single_transformer_blocks
    assert _lists(transformer) == ["single_transformer_blocks", "transformer_blocks"]
    with kept_blocks(transformer) as kept:
        assert kept == {"transformer_blocks": TracedBlocks(name="transformer_blocks", traced=3, of=4),
                        "single_transformer_blocks": TracedBlocks(name="single_transformer_blocks", traced=3,
                                                                  of=5)}  # fmt: skip
        assert list(transformer.single_transformer_blocks) == [singles[0], singles[1], singles[4]]
    assert transformer.transformer_blocks is doubles and transformer.single_transformer_blocks is singles


def test_a_list_no_longer_than_three_is_not_shortened() -> None:
    assert _lists(_transformer(double=3, single=2)) == []


def test_a_block_patched_alone_keeps_its_list_whole() -> None:
    """The case a scaled count would get wrong: one block with its own forward (a graph break, a hook)
    among those a three-block trace leaves out."""
    transformer = _transformer()
    blocks = transformer.single_transformer_blocks
    odd = copy.copy(blocks[2])
    forward = odd.forward

    def patched(*args: Any, **kw: Any) -> Any:
        torch._dynamo.graph_break()
        return forward(*args, **kw)

    odd.forward = patched
    blocks[2] = odd
    assert _lists(transformer) == ["transformer_blocks"]
    with kept_blocks(transformer) as kept:
        assert list(kept) == ["transformer_blocks"]
        assert transformer.single_transformer_blocks is blocks and len(blocks) == 5


def test_a_block_with_other_tensor_kinds_keeps_its_list_whole() -> None:
    transformer = _transformer()
    transformer.transformer_blocks[2].to(torch.bfloat16)  # mixed dtypes: one block would compile apart
    assert _lists(transformer) == ["single_transformer_blocks"]
    transformer.transformer_blocks[2].to(torch.float32)
    assert _lists(transformer) == ["single_transformer_blocks", "transformer_blocks"]
