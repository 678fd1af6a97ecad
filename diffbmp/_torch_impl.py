"""The reference backend: docs/rendering.md written as dense PyTorch.

Every primitive is evaluated at every pixel, so memory is O(N * H * W): this backend is the
executable specification (readable, float64-capable, differentiable by autograd with respect
to every input, textures included) and the ground truth of the tests, not a fast path. It
shares nothing with the native kernels except the flat bank layout.

Section numbers in comments refer to docs/rendering.md.
"""

from __future__ import annotations

import math

import torch

from .constants import (
    ALPHA_MAX,
    CIRCLE_TAPER_END,
    CIRCLE_TAPER_START,
    GAUSSIAN_STD,
    GAUSSIAN_TAPER_END,
    GAUSSIAN_TAPER_START,
    KIND_CIRCLE,
    KIND_GAUSSIAN,
    KIND_TEXTURE,
    LOGISTIC_K,
    MIP_BASE_SIGMA,
    MIP_PAD,
    PIXEL_CENTER,
    PIXEL_SIGMA,
    T_MIN,
)
from .primitives.pyramid import PreparedBank


def effective_sigma(blur: float) -> float:
    """Section 4: deviation of the screen-space Gaussian every primitive is seen through."""
    return math.sqrt(blur * blur + PIXEL_SIGMA * PIXEL_SIGMA)


def pixel_centres(height: int, width: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Section 1: x and y of every pixel centre, each [H, W]."""
    ys = torch.arange(height, dtype=dtype, device=device) + PIXEL_CENTER
    xs = torch.arange(width, dtype=dtype, device=device) + PIXEL_CENTER
    return xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)


def local_coordinates(means, rotations, scales, px, py):
    """Section 3: (u, v) of every pixel for every primitive, each [N, H, W]."""
    dx = px.unsqueeze(0) - means[:, 0].view(-1, 1, 1)
    dy = py.unsqueeze(0) - means[:, 1].view(-1, 1, 1)
    cos = torch.cos(rotations).view(-1, 1, 1)
    sin = torch.sin(rotations).view(-1, 1, 1)
    u = (cos * dx + sin * dy) / scales[:, 0].view(-1, 1, 1)
    v = (-sin * dx + cos * dy) / scales[:, 1].view(-1, 1, 1)
    return u, v


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with derivative zero at 0 (section 5.2) instead of infinity."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


def smoothstep(t: torch.Tensor) -> torch.Tensor:
    """Section 5.2: the C1 taper, t clamped to [0, 1]."""
    t = torch.clamp(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def circle_coverage(u, v, scales, sigma_e):
    """Section 5.2: coverage of the analytic circle, [n, H, W]."""
    r = _safe_sqrt(u * u + v * v)
    rho = torch.sqrt(scales[:, 0] * scales[:, 1]).view(-1, 1, 1)
    z = LOGISTIC_K * (1 - r) * rho / sigma_e
    taper = smoothstep((z + LOGISTIC_K * CIRCLE_TAPER_END) / (LOGISTIC_K * (CIRCLE_TAPER_END - CIRCLE_TAPER_START)))
    return torch.sigmoid(z) * taper


def gaussian_deviations(scales, sigma_e):
    """Section 5.3: blurred deviations (su, sv) in local units, each [n]."""
    su = torch.sqrt(GAUSSIAN_STD**2 + (sigma_e / scales[:, 0]) ** 2)
    sv = torch.sqrt(GAUSSIAN_STD**2 + (sigma_e / scales[:, 1]) ** 2)
    return su, sv


def gaussian_coverage(u, v, scales, sigma_e):
    """Section 5.3: coverage of the analytic Gaussian, [n, H, W]."""
    su, sv = gaussian_deviations(scales, sigma_e)
    su, sv = su.view(-1, 1, 1), sv.view(-1, 1, 1)
    amplitude = GAUSSIAN_STD**2 / (su * sv)
    q = u * u / (su * su) + v * v / (sv * sv)
    taper = smoothstep((GAUSSIAN_TAPER_END**2 - q) / (GAUSSIAN_TAPER_END**2 - GAUSSIAN_TAPER_START**2))
    return amplitude * torch.exp(-0.5 * q) * taper


def analytic_support(scales, sigma_e, kinds):
    """Section 5.2-5.3: (eu, ev) of analytic shapes of ``kinds``, each [n]."""
    scales = scales.detach()
    rho = torch.sqrt(scales[:, 0] * scales[:, 1])
    circle = 1 + CIRCLE_TAPER_END * sigma_e / rho
    su, sv = gaussian_deviations(scales, sigma_e)
    is_circle = kinds == KIND_CIRCLE
    return (
        torch.where(is_circle, circle, GAUSSIAN_TAPER_END * su),
        torch.where(is_circle, circle, GAUSSIAN_TAPER_END * sv),
    )


def choose_levels(size: torch.Tensor, count: torch.Tensor, scale: torch.Tensor, sigma_e: float):
    """Section 5.4, level choice along one axis: (level0, level1, fraction), each [n].

    ``size`` is the base texture's texel count along the axis, ``count`` its number of levels,
    ``scale`` the primitive's half-extent along it. Piecewise constant: no gradient.
    """
    size, scale = size.to(scale.dtype), scale.detach()
    blur_texels = sigma_e * size / (2 * scale)
    level = torch.log2(blur_texels / MIP_BASE_SIGMA)
    level = torch.minimum(torch.clamp(level, min=0.0), (count - 1).to(level.dtype))
    level0 = torch.floor(level)
    fraction = level - level0
    level0 = level0.long()
    level1 = torch.minimum(level0 + 1, count.long() - 1)
    return level0, level1, fraction


def level_content(size: torch.Tensor, level: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Content extent ``size / 2**level`` of a level, in its texels."""
    return size.to(dtype) / torch.pow(2.0, level.to(dtype))


def level_extent(size: torch.Tensor, level: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Section 5.4, support: the local coordinate beyond which a level reads only zeros."""
    content = level_content(size, level, dtype)
    return 2 * (torch.ceil(content) + MIP_PAD + 0.5) / content - 1


def sample_level(bank: PreparedBank, entry, level_x, level_y, u, v):
    """Section 5.4, lookup: bilinear RGBA of level (level_x, level_y) at (u, v).

    ``entry``, ``level_x``, ``level_y`` are [n]; ``u``, ``v`` are [n, H, W]. Returns [n, H, W, 4].
    """
    info = bank.level_table[entry, level_x, level_y].long()  # [n, 3]
    offset, pw, ph = (info[:, k].view(-1, 1, 1) for k in range(3))
    sizes = bank.entries[entry].long()
    content_x = level_content(sizes[:, 1], level_x, u.dtype).view(-1, 1, 1)
    content_y = level_content(sizes[:, 2], level_y, u.dtype).view(-1, 1, 1)
    tx = (u + 1) / 2 * content_x + MIP_PAD - 0.5
    ty = (v + 1) / 2 * content_y + MIP_PAD - 0.5
    x0f, y0f = torch.floor(tx.detach()), torch.floor(ty.detach())
    ax, ay = (tx - x0f).unsqueeze(-1), (ty - y0f).unsqueeze(-1)
    x0, y0 = x0f.long(), y0f.long()

    def texel(x, y):
        inside = (x >= 0) & (x < pw) & (y >= 0) & (y < ph)
        index = torch.where(inside, offset + y * pw + x, torch.zeros_like(x))
        return bank.texels[index] * inside.unsqueeze(-1).to(u.dtype)

    top = texel(x0, y0) * (1 - ax) + texel(x0 + 1, y0) * ax
    bottom = texel(x0, y0 + 1) * (1 - ax) + texel(x0 + 1, y0 + 1) * ax
    return top * (1 - ay) + bottom * ay


def texture_coverage(bank: PreparedBank, entry, u, v, scales, sigma_e):
    """Section 5.4: (cov [n,H,W], P [n,H,W,3], eu [n], ev [n]) of textured primitives."""
    info = bank.entries[entry].long()
    width, height, count_x, count_y = info[:, 1], info[:, 2], info[:, 3], info[:, 4]
    i0, i1, fx = choose_levels(width, count_x, scales[:, 0], sigma_e)
    j0, j1, fy = choose_levels(height, count_y, scales[:, 1], sigma_e)
    fx, fy = fx.view(-1, 1, 1, 1), fy.view(-1, 1, 1, 1)
    rgba = (
        sample_level(bank, entry, i0, j0, u, v) * ((1 - fx) * (1 - fy))
        + sample_level(bank, entry, i1, j0, u, v) * (fx * (1 - fy))
        + sample_level(bank, entry, i0, j1, u, v) * ((1 - fx) * fy)
        + sample_level(bank, entry, i1, j1, u, v) * (fx * fy)
    )
    dtype = u.dtype
    eu = torch.maximum(level_extent(width, i0, dtype), level_extent(width, i1, dtype))
    ev = torch.maximum(level_extent(height, j0, dtype), level_extent(height, j1, dtype))
    return rgba[..., 3], rgba[..., :3], eu, ev


def shape_coverage(bank: PreparedBank, shape_ids, u, v, scales, sigma_e):
    """Sections 5.1-5.4: coverage [N,H,W] and premultiplied colour [N,H,W,3] of every primitive.

    Each kind is evaluated only on its own primitives (so an unused branch can never leak a
    NaN into the gradient), then the support mask of section 5.1 is applied.
    """
    count = shape_ids.shape[0]
    kinds = bank.entries[shape_ids, 0]
    cov = u.new_zeros(u.shape)
    premultiplied = u.new_zeros(u.shape + (3,))
    eu = u.new_zeros(count)
    ev = u.new_zeros(count)
    for kind in (KIND_CIRCLE, KIND_GAUSSIAN, KIND_TEXTURE):
        index = torch.nonzero(kinds == kind).flatten()
        if index.numel() == 0:
            continue
        uk, vk, sk = u[index], v[index], scales[index]
        if kind == KIND_TEXTURE:
            cov_k, p_k, eu_k, ev_k = texture_coverage(bank, shape_ids[index], uk, vk, sk, sigma_e)
        else:
            coverage = circle_coverage if kind == KIND_CIRCLE else gaussian_coverage
            cov_k = coverage(uk, vk, sk, sigma_e)
            p_k = cov_k.unsqueeze(-1).expand(cov_k.shape + (3,))
            eu_k, ev_k = analytic_support(sk, sigma_e, torch.full_like(index, kind))
        cov = cov.index_copy(0, index, cov_k)
        premultiplied = premultiplied.index_copy(0, index, p_k)
        eu = eu.index_copy(0, index, eu_k.to(u.dtype))
        ev = ev.index_copy(0, index, ev_k.to(u.dtype))
    inside = (u.detach().abs() < eu.view(-1, 1, 1)) & (v.detach().abs() < ev.view(-1, 1, 1))
    inside = inside.to(u.dtype)
    return cov * inside, premultiplied * inside.unsqueeze(-1)


def blend_colour(cov, premultiplied, colors, beta, kinds):
    """Section 6: the colour each primitive paints at each pixel, [N, H, W, 3]."""
    positive = cov > 0
    own = premultiplied / torch.where(positive, cov, torch.ones_like(cov)).unsqueeze(-1)
    own = own * positive.unsqueeze(-1).to(cov.dtype)
    analytic = (kinds != KIND_TEXTURE).view(-1, 1, 1, 1)
    own = torch.where(analytic, torch.ones_like(own), own)
    b = beta.view(-1, 1, 1, 1)
    return (1 - b) * colors.view(-1, 1, 1, 3) + b * own


def exclusive_transmittance(alphas: torch.Tensor) -> torch.Tensor:
    """T_n = prod_{m > n} (1 - a_m) for alphas [N, H, W] in painting order."""
    front_to_back = torch.flip(1 - alphas, dims=[0])
    inclusive = torch.cumprod(front_to_back, dim=0)
    exclusive = torch.cat([torch.ones_like(inclusive[:1]), inclusive[:-1]], dim=0)
    return torch.flip(exclusive, dims=[0])


def composite_reference(
    means: torch.Tensor,
    rotations: torch.Tensor,
    scales: torch.Tensor,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    beta: torch.Tensor,
    shape_ids: torch.Tensor,
    bank: PreparedBank,
    height: int,
    width: int,
    blur: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Premultiplied colour C [H, W, 3] and alpha [H, W] of the primitives (sections 1-8).

    Shapes: means [N, 2], rotations [N], scales [N, 2], colors [N, 3], opacities [N],
    beta [N], shape_ids [N] (int). All floating inputs share one dtype and device.
    """
    dtype, device = means.dtype, means.device
    if shape_ids.numel() == 0:
        return means.new_zeros(height, width, 3), means.new_zeros(height, width)
    sigma_e = effective_sigma(blur)
    px, py = pixel_centres(height, width, dtype, device)
    u, v = local_coordinates(means, rotations, scales, px, py)
    cov, premultiplied = shape_coverage(bank, shape_ids, u, v, scales, sigma_e)
    kinds = bank.entries[shape_ids, 0]
    colour = blend_colour(cov, premultiplied, colors, beta, kinds)
    # Section 7: torch.clamp passes the gradient at equality, as the page specifies.
    alphas = torch.clamp(opacities.view(-1, 1, 1) * cov, max=ALPHA_MAX)
    # Section 8: early termination as a constant mask; it is closed towards the bottom, so the
    # transmittance in front of every contributing primitive is unchanged by the masking.
    contributes = (exclusive_transmittance(alphas.detach()) >= T_MIN).to(dtype)
    alphas = alphas * contributes
    transmittance = exclusive_transmittance(alphas)
    weight = (alphas * transmittance).unsqueeze(-1)
    premultiplied_image = (colour * weight).sum(dim=0)
    alpha = 1 - torch.prod(1 - alphas, dim=0)
    return premultiplied_image, alpha
