"""`diffbmp render` and `diffbmp export` end to end on a scene saved in a temporary folder."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from psd_tools import PSDImage

from diffbmp import PrimitiveParams, TextureBank
from diffbmp.cli import main
from diffbmp.scene import SCENE_FORMAT_VERSION, Scene


def scattered(g: torch.Generator, n: int, shape_ids) -> PrimitiveParams:
    """``n`` primitives at random on a 40x30 canvas; ``shape_ids()`` gives their shapes (drawn last)."""
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    means, rotations, scales, colors = rand(n, 2) * 40, rand(n) * 3, rand(n, 2) * 5 + 1, rand(n, 3)
    opacities = 0.4 + 0.6 * rand(n)
    return PrimitiveParams(means=means, rotations=rotations, scales=scales, colors=colors, opacities=opacities,
                           shape_ids=shape_ids(), beta=torch.zeros(n))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small scene saved as an .npz, and the scene itself."""
    g = torch.Generator().manual_seed(3)
    params = scattered(g, 12, lambda: torch.randint(0, 2, (12,), generator=g))
    scene = Scene.from_params(params, TextureBank.from_names(["circle", "disc"], texture_size=32), 30, 40, background=(0.1, 0.2, 0.3))
    folder = tmp_path_factory.mktemp("scenes")
    return scene.save(folder / "painting.npz"), scene


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_render_at_a_scale(saved, tmp_path, capsys):
    path, scene = saved
    out = tmp_path / "big.png"
    code, stdout, _ = run(capsys, "render", path, "--scale", 8, "-o", out)
    assert code == 0 and "wrote" in stdout and "320x240 px" in stdout
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (240, 320, 3)
    reference = np.clip(np.rint(scene.render(8, bank=scene.bank.rebuilt(128))[0].numpy() * 255), 0, 255)
    assert np.abs(pixels.astype(int) - reference).mean() < 0.5  # the bitmaps were re-made at 128 texels


def test_render_defaults_transparency_and_blur(saved, tmp_path, capsys):
    path, _ = saved
    code, _, _ = run(capsys, "render", path)
    default = path.with_suffix(".png")
    assert code == 0 and np.asarray(Image.open(default)).shape == (30, 40, 3)
    default.unlink()
    code, _, _ = run(capsys, "render", path, "--transparent", "--blur", "1.5", "-o", tmp_path / "clear.png")
    image = Image.open(tmp_path / "clear.png")
    assert code == 0 and image.mode == "RGBA" and np.asarray(image)[..., 3].min() == 0


@pytest.mark.parametrize("fmt", ["psd", "svg", "png", "json"])
def test_export_every_format(saved, tmp_path, capsys, fmt):
    path, scene = saved
    out = tmp_path / f"painting.{fmt}"
    code, stdout, stderr = run(capsys, "export", path, "--format", fmt, "-o", out, "--scale", 2)
    assert code == 0 and stderr == "" and f"wrote {out}" in stdout
    if fmt == "psd":
        psd = PSDImage.open(out)
        assert psd.size == (80, 60) and len(list(psd)) == len(scene) + 1
    elif fmt == "svg":
        assert 'width="80" height="60"' in out.read_text()
    elif fmt == "png":
        assert np.asarray(Image.open(out)).shape == (60, 80, 3)
    else:
        data = json.loads(out.read_text())
        assert len(data["primitives"]) == len(scene) and data["canvas"]["width"] == 80


def test_export_format_from_output_and_default_name(saved, tmp_path, capsys):
    path, scene = saved
    code, _, _ = run(capsys, "export", path, "-o", tmp_path / "layers.psd", "--group-size", 5)
    assert code == 0
    assert [layer.name for layer in PSDImage.open(tmp_path / "layers.psd")][1:] == ["primitives 0000-0004", "primitives 0005-0009", "primitives 0010-0011"]
    code, _, _ = run(capsys, "export", path, "--format", "json")
    assert code == 0 and path.with_suffix(".json").exists()
    path.with_suffix(".json").unlink()


def error_of(capsys, *argv) -> str:
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2 and stdout == ""
    assert "Traceback" not in stderr and stderr.startswith(f"diffbmp {argv[0]}: error: ")
    return stderr


def test_errors_are_reported_cleanly(saved, tmp_path, capsys):
    path, _ = saved
    assert "does not exist" in error_of(capsys, "render", tmp_path / "nothing.npz")
    assert "did you mean 'psd'" in error_of(capsys, "export", path, "--format", "pds", "-o", tmp_path / "x")
    assert "valid formats: json, png, psd, svg" in error_of(capsys, "export", path, "--format", "tiff")
    assert "--group-size does not apply to svg" in error_of(capsys, "export", path, "--format", "svg", "--group-size", 3)
    assert "give --format" in error_of(capsys, "export", path)
    message = error_of(capsys, "export", path, "-o", tmp_path / "no" / "such" / "out.psd")
    assert "folder" in message and "does not exist" in message and "mkdir -p" in message
    assert "writes PNG files" in error_of(capsys, "render", path, "-o", tmp_path / "out.jpg")
    assert list(tmp_path.iterdir()) == []


def test_scene_from_a_newer_version(saved, tmp_path, capsys):
    path, _ = saved
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    header = json.loads(arrays["header"].tobytes())
    header["version"] = SCENE_FORMAT_VERSION + 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **arrays)
    message = error_of(capsys, "export", newer, "--format", "psd")
    assert "newer" in message and "upgrade" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newer.npz"]


def test_bad_numbers_are_usage_errors(saved, capsys):
    path, _ = saved
    for argv in (["render", path, "--scale", "0"], ["render", path, "--scale", "nan"], ["export", path, "--group-size", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        assert exit_info.value.code == 2
    assert "must be" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["png", "psd"])
def test_interrupted_export_leaves_no_file(saved, tmp_path, capsys, monkeypatch, fmt):
    from diffbmp.exports import atomic

    path, _ = saved

    def interrupted(fd):
        # The whole file is in the temporary file by now; Ctrl-C before it is renamed.
        assert any(p.suffix == ".tmp" and p.stat().st_size > 0 for p in tmp_path.iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupted)
    code, _, stderr = run(capsys, "export", path, "-o", tmp_path / f"out.{fmt}")
    assert code == 130 and "interrupted" in stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- several formats, subsets, PSD options
@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A scene whose primitives come from three fit stages, saved as an .npz."""
    params = scattered(torch.Generator().manual_seed(5), 16, lambda: torch.tensor([0, 1, 2, 0] * 4))
    stages = torch.tensor([0] * 8 + [1] * 5 + [2] * 3)
    bank = TextureBank.from_names(["circle", "disc", "star"], texture_size=32)
    scene = Scene.from_params(params, bank, 30, 40, background=(0.1, 0.2, 0.3), stages=stages)
    folder = tmp_path_factory.mktemp("staged")
    return scene.save(folder / "staged.npz"), scene


def pixel_names(path) -> list[str]:
    return [layer.name for layer in PSDImage.open(path).descendants() if layer.kind == "pixel"]


def test_several_formats_in_one_call(staged, tmp_path, capsys):
    path, scene = staged
    (tmp_path / "out").mkdir()
    code, stdout, stderr = run(capsys, "export", path, "--format", "psd,svg,png,json", "-o", tmp_path / "out" / "painting",
                               "--scale", 2, "--group-by", "shape", "--transparent")
    assert code == 0 and stderr == ""
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["painting.json", "painting.png", "painting.psd", "painting.svg"]
    assert stdout.count("wrote ") == 4 and "80x60 px, 16 primitives" in stdout
    # Each writer got the flags it takes: the PSD its grouping and transparency, the PNG and
    # the SVG their transparency; the JSON none.
    psd = PSDImage.open(tmp_path / "out" / "painting.psd")
    assert psd.size == (80, 60) and psd.channels == 4 and "background" not in [layer.name for layer in psd]
    assert any(layer.kind == "group" and layer.name.startswith("circle (") for layer in psd)
    assert Image.open(tmp_path / "out" / "painting.png").mode == "RGBA"
    assert 'id="background"' not in (tmp_path / "out" / "painting.svg").read_text()


def test_several_formats_next_to_the_scene(staged, capsys):
    path, _ = staged
    code, stdout, _ = run(capsys, "export", path, "--format", "psd, json,psd")  # spaces and repeats are fine
    targets = [path.with_suffix(".psd"), path.with_suffix(".json")]
    try:
        assert code == 0 and all(t.exists() for t in targets) and stdout.count("wrote ") == 2
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def test_select_subsets(staged, tmp_path, capsys):
    path, scene = staged
    shapes = scene.shape_ids.tolist()
    out = tmp_path / "discs.psd"
    code, stdout, _ = run(capsys, "export", path, "-o", out, "--select", "shape=disc,star", "--group-by", "none")
    assert code == 0 and "12 of 16 primitives" not in stdout and "8 of 16 primitives" in stdout
    expected = [n for n in range(16) if shapes[n] in (1, 2)]
    assert [name.split(" ")[0] for name in pixel_names(out)][1:] == [f"{n:04d}" for n in expected]  # original indices
    # Several selections: AND. Stages by number.
    out = tmp_path / "late.psd"
    code, stdout, _ = run(capsys, "export", path, "-o", out, "--select", "stage=1,2", "--select", "index=10-", "--select", "shape=circle")
    expected = [n for n in range(10, 16) if shapes[n] == 0]
    assert code == 0 and [name.split(" ")[0] for name in pixel_names(out)][1:] == [f"{n:04d}" for n in expected]
    # The same subset in SVG and PNG: the PNG is the subset's render.
    out = tmp_path / "sub"
    code, _, _ = run(capsys, "export", path, "--format", "png,svg,json", "-o", out, "--select", "index=0-3,12")
    subset = scene.select(torch.tensor([0, 1, 2, 3, 12]))
    reference = np.clip(np.rint(subset.render()[0].numpy() * 255), 0, 255)
    assert code == 0 and np.abs(np.asarray(Image.open(tmp_path / "sub.png")).astype(int) - reference).max() <= 1
    svg = (tmp_path / "sub.svg").read_text()
    assert re.findall(r'id="p(\d{4})-', svg) == ["0000", "0001", "0002", "0003", "0012"]  # the whole scene's indices
    # Bitmaps instead of outlines and drawings, for SVG only.
    code, _, _ = run(capsys, "export", path, "--format", "svg", "-o", tmp_path / "flat.svg", "--no-vectors")
    assert code == 0
    code, _, err = run(capsys, "export", path, "--format", "png", "-o", tmp_path / "flat.png", "--no-vectors")
    assert code == 2 and "--no-vectors does not apply to png" in err
    data = json.loads((tmp_path / "sub.json").read_text())
    assert len(data["primitives"]) == 5
    assert data["metadata"]["selection"] == {"indices": [0, 1, 2, 3, 12], "count": 16, "selections": ["index=0-3,12"]}


def test_groups_by_stage_from_the_command_line(staged, tmp_path, capsys):
    path, _ = staged
    out = tmp_path / "stages.psd"
    code, _, _ = run(capsys, "export", path, "-o", out, "--group-size", 4, "--dpi", 300)
    top = list(PSDImage.open(out))
    assert code == 0 and [layer.name for layer in top] == ["background", "stage 0 (0000-0007)", "stage 1 (0008-0012)", "stage 2 (0013-0015)"]
    assert [group.name for group in top[1]] == ["primitives 0000-0003", "primitives 0004-0007"]
    from psd_tools.constants import Resource

    info = PSDImage.open(out).image_resources.get_data(Resource.RESOLUTION_INFO)
    assert info.horizontal == 300 * 65536


def test_render_a_subset(staged, tmp_path, capsys):
    path, scene = staged
    out = tmp_path / "circles.png"
    code, stdout, _ = run(capsys, "render", path, "-o", out, "--select", "shape=circle")
    subset = scene.select(scene.shape_ids == 0)
    reference = np.clip(np.rint(subset.render()[0].numpy() * 255), 0, 255)
    assert code == 0 and "8 of 16 primitives" in stdout
    assert np.abs(np.asarray(Image.open(out)).astype(int) - reference).max() <= 1


def test_bad_selections_and_flags(staged, tmp_path, capsys):
    path, _ = staged
    message = error_of(capsys, "export", path, "--format", "psd", "-o", tmp_path / "x.psd", "--select", "colour=red")
    assert "shape=NAME" in message and "index=A-B" in message and "stage=K" in message
    message = error_of(capsys, "export", path, "--format", "psd", "--select", "shape=sta")
    assert "no shape 'sta'" in message and "did you mean 'star'" in message and "circle, disc, star" in message
    message = error_of(capsys, "export", path, "--format", "psd", "--select", "stage=7")
    assert "stage 7" in message and "its stages are: 0, 1, 2" in message
    assert "beyond the scene's 16 primitives" in error_of(capsys, "export", path, "--format", "psd", "--select", "index=40-50")
    assert "ends before it starts" in error_of(capsys, "export", path, "--format", "psd", "--select", "index=9-3")
    assert "index ranges such as" in error_of(capsys, "export", path, "--format", "psd", "--select", "index=a-b")
    assert "stage numbers" in error_of(capsys, "export", path, "--format", "psd", "--select", "stage=one")
    assert "names nothing" in error_of(capsys, "export", path, "--format", "psd", "--select", "shape=")
    message = error_of(capsys, "export", path, "--format", "psd", "--select", "shape=star", "--select", "index=0-1")
    assert "picks none of the scene's 16 primitives" in message
    # Flags: refused only when none of the formats asked for takes them.
    assert "--group-by does not apply to svg exports (it is for psd)" in error_of(capsys, "export", path, "--format", "svg", "--group-by", "shape")
    assert "--dpi does not apply to svg or json exports" in error_of(capsys, "export", path, "--format", "svg,json", "--dpi", 300)
    assert "--embed-textures does not apply to psd, svg or png exports" in \
        error_of(capsys, "export", path, "--format", "psd,svg,png", "--embed-textures")
    message = error_of(capsys, "export", path, "--format", "psd,svg", "-o", tmp_path / "both.psd")
    assert "without an ending" in message and "both' writes" in message and message.rstrip().endswith("both.svg'")
    assert "empty item" in error_of(capsys, "export", path, "--format", "psd,,svg")
    assert "did you mean 'psd'" in error_of(capsys, "export", path, "--format", "svg,pds")
    message = error_of(capsys, "export", path, "--format", "psd,svg", "-o", tmp_path / "missing" / "painting")
    assert "does not exist" in message and "mkdir -p" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["staged.npz"]
    with pytest.raises(SystemExit):
        main(["export", str(path), "--format", "psd", "--group-by", "colour"])
    with pytest.raises(SystemExit):
        main(["export", str(path), "--format", "psd", "--dpi", "0"])
    assert "invalid choice" in capsys.readouterr().err
