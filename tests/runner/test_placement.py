"""``spec.memory: auto``'s choice on known budgets (an L4's 22 GiB, the full-size weights), and what
the runner does where there is no GPU."""

from __future__ import annotations

import pytest

from fluxaudit_runner.errors import GroupInputError
from fluxaudit_runner.placement import Budget, choose, module_bytes

GIB = 2**30
L4_FREE = int(21.5 * GIB)  # 22 GiB cap, minus the VAE and the CUDA context's share
BLOCK_BF16, OUTSIDE_BF16 = int(0.42 * GIB), int(0.3 * GIB)  # a FLUX double block in bf16; embedders, norms


@pytest.mark.parametrize(
    ("weights_gib", "activation_gib", "expected"),
    [
        (12.7, 3.0, "resident"),  # Q8_0 on an L4: fits with its activations
        (6.9, 3.0, "resident"),  # Q4_0
        (22.2, 3.0, "groupOffload"),  # the bf16 reference: 23.8 GB of weights cannot be resident
        (19.5, 3.0, "groupOffload"),  # the weights alone would fit; with the measured activations they do not
    ],
)
def test_auto_picks_resident_when_weights_and_activations_fit(
    weights_gib: float, activation_gib: float, expected: str
) -> None:
    budget = Budget(int(weights_gib * GIB), BLOCK_BF16, OUTSIDE_BF16, int(activation_gib * GIB), L4_FREE)
    mode, reason = choose("auto", budget)
    assert mode == expected
    assert (
        ("fit the" in reason) if expected == "resident" else ("do not fit" in reason and "group offloading" in reason)
    )


def test_auto_falls_back_to_sequential_offload_when_two_blocks_do_not_fit() -> None:
    mode, reason = choose("auto", Budget(22 * GIB, 4 * GIB, GIB, 3 * GIB, 8 * GIB))
    assert mode == "sequentialCpuOffload" and "nor do two blocks streamed" in reason


def test_an_explicit_mode_is_taken_as_asked() -> None:
    for mode in ("resident", "modelCpuOffload", "groupOffload", "sequentialCpuOffload"):
        assert choose(mode, Budget(GIB, GIB, GIB, 0, L4_FREE)) == (mode, f"spec.memory = {mode}")


def test_without_a_gpu_only_resident_makes_sense() -> None:
    assert choose("auto", Budget(GIB, GIB, GIB, 0, None))[0] == "resident"
    with pytest.raises(GroupInputError, match=r"spec\.memory: groupOffload needs a CUDA GPU"):
        choose("groupOffload", Budget(GIB, GIB, GIB, 0, None))


def test_module_bytes_counts_parameters_and_buffers() -> None:
    import torch

    m = torch.nn.Linear(10, 4)
    m.register_buffer("scale", torch.zeros(3, dtype=torch.float16))
    assert module_bytes(m) == (40 + 4) * 4 + 3 * 2


def test_gguf_weights_never_go_to_sequential_offload() -> None:
    tight = Budget(22 * GIB, 4 * GIB, GIB, 3 * GIB, 8 * GIB, gguf=True)
    mode, reason = choose("auto", tight)
    assert mode == "groupOffload" and "the least GGUF runs with" in reason
    with pytest.raises(GroupInputError, match="sequentialCpuOffload does not run GGUF weights"):
        choose("sequentialCpuOffload", Budget(GIB, GIB, GIB, 0, L4_FREE, gguf=True))
