"""Render a small scene with diffbmp and take a gradient through it.

    python examples/render_and_gradient.py

Builds a bank (an analytic circle, a built-in brush stroke, a glyph), places 200 random
primitives, renders them over a background, compares the result with a target image and
back-propagates the error to every primitive parameter. Then runs a few Adam steps to show
the loss going down, and writes before/after PNGs next to this file.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data, transform

import diffbmp
from diffbmp import PrimitiveParams, TextureBank

size = 128
target = torch.from_numpy(transform.resize(data.astronaut(), (size, size), anti_aliasing=True)).float()

bank = TextureBank.from_names(["circle", "brush_round", "text:A"])
g = torch.Generator().manual_seed(0)
n = 200
raw = {
    "means": torch.rand(n, 2, generator=g) * size,
    "rotations": torch.rand(n, generator=g) * 6.28,
    "log_scales": torch.log(torch.full((n, 2), 6.0)),
    "color_logits": torch.randn(n, 3, generator=g),
    "opacity_logits": torch.zeros(n),
}
raw = {name: t.requires_grad_(True) for name, t in raw.items()}
shape_ids = torch.randint(0, len(bank), (n,), generator=g)
background = torch.tensor([0.5, 0.5, 0.5])


def render():
    params = PrimitiveParams(
        means=raw["means"],
        rotations=raw["rotations"],
        scales=torch.exp(raw["log_scales"]),
        colors=torch.sigmoid(raw["color_logits"]),
        opacities=torch.sigmoid(raw["opacity_logits"]),
        shape_ids=shape_ids,
    )
    image, alpha = diffbmp.composite(params, bank, background, size, size, blur=1.0)
    return image


def save(image: torch.Tensor, name: str) -> None:
    path = Path(__file__).with_name(name)
    Image.fromarray((image.detach().clamp(0, 1).numpy() * 255).round().astype(np.uint8)).save(path)
    print(f"wrote {path}")


image = render()
loss = torch.mean((image - target) ** 2)
loss.backward()
print(f"loss {loss.item():.4f}")
for name, tensor in raw.items():
    print(f"  d loss / d {name:15s} shape {tuple(tensor.grad.shape)}  norm {tensor.grad.norm().item():.3e}")
save(image, "before.png")

optimizer = torch.optim.Adam(raw.values(), lr=0.05)
for step in range(100):
    optimizer.zero_grad()
    loss = torch.mean((render() - target) ** 2)
    loss.backward()
    optimizer.step()
    if step % 25 == 0:
        print(f"step {step:3d}  loss {loss.item():.4f}")
print(f"after 100 steps: loss {loss.item():.4f}")
save(render(), "after.png")
