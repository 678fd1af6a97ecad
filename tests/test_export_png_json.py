"""PNG and JSON exports, the export() dispatcher, and atomic writes."""

from __future__ import annotations

import json
import math
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

from diffbmp import InputError, PrimitiveParams, TextureBank
from diffbmp.constraints import Constraint, ShapeConstraints
from diffbmp.errors import OutputError
from diffbmp.exports import atomic, export
from diffbmp.exports.atomic import atomic_open
from diffbmp.exports.json_format import JSON_FORMAT, JSON_VERSION, read_json, scene_from_dict, scene_to_dict
from diffbmp.exports.png import render_pixels
from diffbmp.scene import Scene

SHAPES = ["circle", "gaussian", "disc", "brush_flat"]


@pytest.fixture(scope="module")
def scene() -> Scene:
    g = torch.Generator().manual_seed(7)
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    n = 30
    params = PrimitiveParams(
        means=rand(n, 2) * torch.tensor([64.0, 48.0]),
        rotations=(rand(n) * 2 - 1) * math.pi,
        scales=rand(n, 2) * 6 + 1,
        colors=rand(n, 3),
        opacities=0.2 + 0.8 * rand(n),
        shape_ids=torch.randint(0, len(SHAPES), (n,), generator=g),
        beta=rand(n),
    )
    result = Scene.from_params(params, TextureBank.from_names(SHAPES, texture_size=32), 48, 64, background=(0.8, 0.4, 0.2))
    result.metadata = {"target": "cat.jpg", "steps": 100}
    return result


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


# ----------------------------------------------------------------------------- PNG
@pytest.mark.parametrize("scale", [1.0, 2.0, 0.5, 1.5])
def test_png_size_and_pixels_match_render(scene, tmp_path, scale):
    path = export(scene, tmp_path / "out.png", scale=scale, texture_size=0)
    pixels = read_png(path)
    height, width = scene.canvas_size(scale)
    assert pixels.shape == (height, width, 3)
    reference = np.clip(np.rint(scene.render(scale)[0].numpy() * 255), 0, 255)
    assert np.abs(pixels.astype(np.int64) - reference).max() <= 1


@pytest.mark.parametrize("transparent", [False, True])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_a_large_png_renders_in_bands_that_join_into_the_whole_picture(scene, transparent, scale):
    whole = render_pixels(scene, scale, transparent=transparent, texture_size=0)
    height, width = scene.canvas_size(scale)
    for band_pixels in (width * 7, width * 16 + 5, 1):  # bands of 7 and 16 rows, and of one row
        banded = render_pixels(scene, scale, transparent=transparent, texture_size=0, band_pixels=band_pixels)
        assert banded.shape == whole.shape == (height, width, 4 if transparent else 3)
        difference = np.abs(banded.astype(np.int64) - whole)
        # Only the float rounding of a band's offset differs: one level, at a few pixels.
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01


def test_transparent_png_is_straight_rgba(scene, tmp_path):
    path = export(scene, tmp_path / "clear.png", scale=2, transparent=True, texture_size=0)
    pixels = read_png(path).astype(np.float64) / 255
    image, alpha = (t.numpy() for t in scene.render(2, background=False))
    assert pixels.shape == (96, 128, 4)
    assert np.abs(pixels[..., 3] - alpha).max() <= 0.5 / 255 + 1e-6
    assert pixels[..., 3].min() == 0  # uncovered corners are transparent
    # Straight colour times alpha gives back the premultiplied render.
    covered = alpha > 0.05
    premultiplied = pixels[..., :3] * pixels[..., 3:]
    assert np.abs(premultiplied - image)[covered].max() < 3 / 255


def test_png_blur_is_softer(scene):
    sharp = render_pixels(scene, texture_size=0).astype(np.float64)
    soft = render_pixels(scene, blur=2.0, texture_size=0).astype(np.float64)
    gradient = lambda img: np.abs(np.diff(img, axis=1)).mean()  # noqa: E731
    assert gradient(soft) < 0.8 * gradient(sharp)


# ----------------------------------------------------------------------------- JSON
def test_json_describes_every_primitive(scene, tmp_path):
    data = json.loads(export(scene, tmp_path / "scene.json", scale=2).read_text())
    assert data["format"] == JSON_FORMAT and data["version"] == JSON_VERSION
    assert data["canvas"] == {"width": 128, "height": 96, "scale": 2.0, "scene_width": 64, "scene_height": 48}
    assert data["background"]["hex"] == "#cc6633"
    assert [s["name"] for s in data["shapes"]] == SHAPES
    assert [s["kind"] for s in data["shapes"]] == ["circle", "gaussian", "texture", "texture"]
    assert data["shapes"][2]["source"] == "builtin:disc" and data["shapes"][2]["width"] == 32
    assert data["metadata"] == {"target": "cat.jpg", "steps": 100}
    params = scene.params()
    for n, row in enumerate(data["primitives"]):
        assert row["z"] == n and row["shape"] == SHAPES[int(params.shape_ids[n])]
        assert row["kind"] == data["shapes"][row["shape_id"]]["kind"]
        assert np.allclose(row["center"], params.means[n].double() * 2, atol=1e-5)
        assert np.allclose(row["half_extents"], params.scales[n].double() * 2, atol=1e-5)
        assert math.isclose(row["rotation_rad"], float(params.rotations[n]), abs_tol=1e-6)
        assert math.isclose(row["rotation_deg"], math.degrees(row["rotation_rad"]), abs_tol=1e-9)
        assert np.allclose(row["color"]["rgb"], params.colors[n].double(), atol=1e-6)
        assert row["color"]["hex"] == "#" + "".join(f"{round(float(c) * 255):02x}" for c in params.colors[n])
        assert math.isclose(row["opacity"], float(params.opacities[n]), abs_tol=1e-6)
        assert math.isclose(row["beta"], float(params.beta[n]), abs_tol=1e-6)


def test_json_round_trip(scene, tmp_path):
    path = export(scene, tmp_path / "scene.json", scale=3)
    loaded = read_json(path)  # bitmaps rebuilt from their sources (built-ins)
    assert (loaded.height, loaded.width) == (scene.height, scene.width)
    before, after = scene.params(), loaded.params()
    for name in ("means", "rotations", "scales", "colors", "opacities", "beta"):
        assert torch.allclose(getattr(before, name), getattr(after, name), atol=2e-5), name
    assert torch.equal(before.shape_ids, after.shape_ids)
    assert torch.allclose(scene.background(), loaded.background(), atol=1e-5)
    assert loaded.bank.names == scene.bank.names
    # Embedded bitmaps restore the bank itself (8-bit).
    embedded = scene_from_dict(scene_to_dict(scene, embed_textures=True))
    for original, restored in zip(scene.bank, embedded.bank):
        assert (original.rgba is None) == (restored.rgba is None)
        if original.rgba is not None:
            assert torch.allclose(original.rgba, restored.rgba, atol=0.5 / 255 + 1e-6)


def test_json_keeps_stages_and_constraints(scene, tmp_path):
    constraints = ShapeConstraints([Constraint(rotation=(-0.3, 0.3), aspect=1.0)] + [Constraint()] * (len(scene.bank) - 1))
    staged = Scene.from_params(scene.params(), scene.bank, scene.height, scene.width, stages=torch.arange(len(scene)) % 3,
                               constraints=constraints)
    data = json.loads(export(staged, tmp_path / "staged.json").read_text())
    assert [row["stage"] for row in data["primitives"]] == (torch.arange(len(scene)) % 3).tolist()
    assert data["shapes"][0]["constraint"] == {"rotation": [-0.3, 0.3], "aspect": 1.0}
    assert all("constraint" not in shape for shape in data["shapes"][1:])
    loaded = read_json(tmp_path / "staged.json")
    assert torch.equal(loaded.stages, staged.stages) and loaded.constraints == constraints
    assert torch.allclose(loaded.params().rotations, staged.params().rotations, atol=2e-5)
    # A file without stage ids or constraints (written before them) reads as stage 0, unconstrained.
    for row in data["primitives"]:
        del row["stage"]
    del data["shapes"][0]["constraint"]
    plain = scene_from_dict(data)
    assert plain.constraints is None and not bool(plain.stages.any())


def test_json_from_a_newer_version_is_refused(scene):
    data = scene_to_dict(scene)
    data["version"] = JSON_VERSION + 1
    with pytest.raises(InputError, match="newer"):
        scene_from_dict(data)
    with pytest.raises(InputError, match="not a diffbmp JSON"):
        scene_from_dict({"format": "something-else"})


# ----------------------------------------------------------------------------- dispatch
def test_format_from_suffix_or_argument(scene, tmp_path):
    assert export(scene, tmp_path / "a.JSON").suffix == ".JSON"
    written = export(scene, tmp_path / "noext", format="json")
    assert written.name == "noext.json" and written.exists()
    assert export(scene, tmp_path / "b.png", format=".PNG").exists()


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("out.pdf", {}, r"unknown export format 'pdf' \(did you mean 'psd'\?\).*; valid formats: json, png, psd, svg"),
        ("out.png", {"format": "jpeg"}, r"unknown export format 'jpeg'.*valid formats: json, png, psd, svg"),
        ("out", {}, "give a format"),
        ("out.psd", {"format": "png"}, r"ends in \.psd but the format is png"),
        ("out.png", {"group_size": 10}, "png export has no option 'group_size'"),
        ("out.png", {"scale": 0}, "scale must be a positive number"),
    ],
)
def test_bad_requests_are_input_errors(scene, tmp_path, name, kwargs, message):
    with pytest.raises(InputError, match=message):
        export(scene, tmp_path / name, **kwargs)
    assert not list(tmp_path.iterdir())


def test_missing_or_unusable_output_folder(scene, tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"folder '.*missing' does not exist; create it first \(mkdir -p"):
        export(scene, tmp_path / "missing" / "out.svg")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        export(scene, tmp_path / "file" / "out.svg")
    with pytest.raises(InputError, match="it is a folder"):
        export(scene, tmp_path, format="json")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # Running as root makes a read-only folder writable, so refuse the temporary file instead.
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match=r"out\.json': permission denied; choose a folder you can write to"):
        export(scene, tmp_path / "out.json")


# ----------------------------------------------------------------------------- atomic writes
def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing_behind(tmp_path, failure):
    target = tmp_path / "out.bin"
    with pytest.raises(type(failure)):
        with atomic_open(target) as handle:
            handle.write(b"half of the file")
            raise failure
    assert leftovers(tmp_path) == []


def test_failed_export_keeps_the_previous_file(scene, tmp_path, monkeypatch):
    import diffbmp.exports.psd as psd

    target = tmp_path / "scene.psd"
    target.write_bytes(b"previous export")

    def write_half(handle, *args, **kwargs):
        handle.write(b"\0" * 1000)  # a truncated document (its header is written already) ...
        raise KeyboardInterrupt  # ... then Ctrl-C

    monkeypatch.setattr(psd, "_write_layer_section", write_half)
    with pytest.raises(KeyboardInterrupt):
        export(scene, target)
    assert leftovers(tmp_path) == ["scene.psd"] and target.read_bytes() == b"previous export"
    target.unlink()
    with pytest.raises(KeyboardInterrupt):
        export(scene, target)
    assert leftovers(tmp_path) == []


def test_exports_are_complete_and_readable_by_others(scene, tmp_path):
    for name in ("a.png", "a.json", "a.svg", "a.psd"):
        path = export(scene, tmp_path / name)
        assert path.stat().st_mode & 0o044 == 0o044  # not the 0600 of a temporary file
    assert leftovers(tmp_path) == ["a.json", "a.png", "a.psd", "a.svg"]
    assert atomic.TEMP_SUFFIX == ".tmp"
