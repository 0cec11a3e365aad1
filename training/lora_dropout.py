"""LoRA dropout with a cheaper random mask.

peft applies `torch.nn.Dropout` to the input of every LoRA layer. On the CPU, drawing its
mask (`bernoulli_`, one random number per element) took 5% of a training step of the
default model here (torch.profiler, 2 threads), about as much as attention. `MaskDropout`
is the same inverted dropout, with the mask drawn four elements per 64-bit random word:
each element is kept independently with probability 1 - p', where p' is p rounded to a
multiple of 1/65,536, and scaled by 1 / (1 - p'), so the expected output is the input.
The mask follows torch's seeded generator, like `torch.nn.Dropout`'s.
"""

from __future__ import annotations

from typing import Any

import torch

_LEVELS = 1 << 16  # an element's random number: one 16-bit lane of a 64-bit word


class MaskDropout(torch.nn.Module):
    """Inverted dropout of probability `p` (quantised to 1/65,536); identity in eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), not {p}")
        dropped = round(p * _LEVELS)
        self.p = dropped / _LEVELS
        self._threshold = dropped - _LEVELS // 2  # int16 lanes run from -32768 to 32767
        self._scale = 1.0 / (1.0 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
        words.random_(-(1 << 63), (1 << 63) - 1)  # every bit uniform (random_() alone: 63)
        lanes = words.view(torch.int16)[:n].view(x.shape)
        mask = (lanes >= self._threshold).to(x.dtype).mul_(self._scale)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_mask_dropout(model: Any) -> int:
    """Swap peft's `lora_dropout` modules (torch.nn.Dropout, p > 0) for `MaskDropout`;
    how many were swapped."""
    swapped = 0
    for module in model.modules():
        layers = getattr(module, "lora_dropout", None)
        if not isinstance(layers, torch.nn.ModuleDict):
            continue
        for name, layer in list(layers.items()):
            if type(layer) is torch.nn.Dropout and layer.p > 0:
                layers[name] = MaskDropout(layer.p)
                swapped += 1
    return swapped
