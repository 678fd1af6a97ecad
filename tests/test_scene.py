"""Scene: activations, save/load round trips, and its errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image
import torch

from diffbmp import InputError, PrimitiveParams, TextureBank
from diffbmp.scene import SCENE_FORMAT_VERSION, Scene

from scenes import random_params


@pytest.fixture
def bank() -> TextureBank:
    return TextureBank.from_names(["circle", "gaussian", "star", "brush_flat", "text:Q"])


@pytest.fixture
def scene(bank) -> Scene:
    params = random_params(30, 40, 50, seed=2, num_shapes=len(bank), opacity_range=(0.05, 0.95))
    params.beta[:5] = 0.0
    params.beta[5:10] = 1.0
    return Scene.from_params(params, bank, 40, 50, background=(0.1, 0.7, 0.4))


def test_activations_recover_the_parameters(bank):
    params = random_params(20, 30, 30, seed=1, num_shapes=len(bank), opacity_range=(0.01, 0.99))
    params.beta[0], params.beta[1] = 0.0, 1.0
    scene = Scene.from_params(params, bank, 30, 30)
    back = scene.params()
    for name in ("means", "rotations", "scales", "colors", "opacities"):
        torch.testing.assert_close(getattr(back, name), getattr(params, name), atol=2e-5, rtol=1e-5)
    assert back.beta[0].item() == 0.0 and back.beta[1].item() == 1.0  # exact stencil / own colours
    torch.testing.assert_close(back.beta[2:], params.beta[2:], atol=2e-5, rtol=0)
    assert torch.equal(back.shape_ids, params.shape_ids)


def test_save_and_load_round_trip_exactly(scene, tmp_path):
    path = scene.save(tmp_path / "painting.npz")
    loaded = Scene.load(path)
    assert (loaded.height, loaded.width) == (scene.height, scene.width)
    for name, tensor in scene.raw_tensors().items():
        assert torch.equal(getattr(loaded, name), tensor), name
    assert torch.equal(loaded.shape_ids, scene.shape_ids)
    assert loaded.bank.names == scene.bank.names
    for a, b in zip(loaded.bank, scene.bank):
        assert a.kind == b.kind and a.source == b.source
        assert (a.rgba is None) == (b.rgba is None)
        if a.rgba is not None:
            assert torch.equal(a.rgba, b.rgba)
    image, alpha = scene.render()
    image2, alpha2 = loaded.render()
    assert torch.equal(image, image2) and torch.equal(alpha, alpha2)


def test_float64_scenes_keep_their_precision(bank, tmp_path):
    params = random_params(5, 20, 20, seed=4, num_shapes=len(bank), dtype=torch.float64)
    scene = Scene.from_params(params, bank, 20, 20)
    loaded = Scene.load(scene.save(tmp_path / "s.npz"))
    assert loaded.means.dtype == torch.float64 and torch.equal(loaded.means, scene.means)


def test_save_writes_no_pickles_and_is_atomic(scene, tmp_path):
    path = scene.save(tmp_path / "s")  # the suffix is added
    assert path.name == "s.npz"
    with np.load(path, allow_pickle=False) as data:  # would raise on any object array
        header = json.loads(data["header"].tobytes())
    # A scene without constraints is written as version 1, which every diffbmp reads.
    assert header["version"] == 1 <= SCENE_FORMAT_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]  # no temporary files left
    assert path.stat().st_mode & 0o044 == 0o044 & ~_umask()  # readable as any file the user writes


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_empty_scene_renders_the_background(bank):
    scene = Scene.empty(bank, 12, 9, background=(0.25, 0.5, 0.75))
    image, alpha = scene.render()
    assert len(scene) == 0 and alpha.abs().max().item() == 0.0
    torch.testing.assert_close(image, torch.tensor([0.25, 0.5, 0.75]).expand(12, 9, 3), atol=1e-5, rtol=0)


def test_select_and_concat_keep_painting_order(scene):
    top = scene.select(torch.arange(20, 30))
    bottom = scene.select(torch.arange(0, 20))
    joined = bottom.concat(top)
    assert torch.equal(joined.means, scene.means) and torch.equal(joined.shape_ids, scene.shape_ids)
    image, _ = joined.render()
    assert torch.equal(image, scene.render()[0])


def test_render_at_scale_is_larger_and_gradients_reach_raw_tensors(scene):
    image, alpha = scene.render(2.5)
    assert image.shape == (100, 125, 3) and alpha.shape == (100, 125)
    live = scene.detached()
    for tensor in live.raw_tensors().values():
        tensor.requires_grad_(True)
    live.render(1.0, blur=1.0)[0].mean().backward()
    for name, tensor in live.raw_tensors().items():
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all(), name
        assert tensor.grad.abs().sum() > 0, name


def test_load_errors_are_clear(scene, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        Scene.load(tmp_path / "nothing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="not a diffbmp scene file: it is a text file"):
        Scene.load(garbage)
    # Files numpy would offer to unpickle: the message never suggests unsafe loading.
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="holds Python objects") as caught:
        Scene.load(objects)
    assert "pickle=" not in str(caught.value) and "unsafe" not in str(caught.value)
    image = tmp_path / "photo.npz"
    Image.new("RGB", (4, 4)).save(image, format="PNG")
    with pytest.raises(InputError, match="it is a PNG image, not an .npz archive"):
        Scene.load(image)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(InputError, match="no header"):
        Scene.load(other)
    # A file from a newer version: rewrite the header's version.
    path = scene.save(tmp_path / "new.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays["header"].tobytes())
    header["version"] = SCENE_FORMAT_VERSION + 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(InputError, match="newer diffbmp"):
        Scene.load(path)


def test_render_rejects_bad_scale(scene):
    with pytest.raises(InputError, match="scale must be a positive number"):
        scene.render(0)


def test_rebuilt_bank_makes_sharper_bitmaps(bank):
    sharper = bank.rebuilt(256)
    assert sharper.names == bank.names
    star = bank.index("star")
    assert max(sharper[star].rgba.shape[:2]) == 256 > max(bank[star].rgba.shape[:2])
    assert sharper[bank.index("circle")].rgba is None
