"""The fit configuration: defaults, recipes, readable errors, --set overrides, the reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from diffbmp.config import (
    REFERENCE_END,
    REFERENCE_START,
    FitConfig,
    config_from_dict,
    config_reference,
    dump_config,
    load_config,
    parse_color,
)
from diffbmp.errors import ConfigError
from diffbmp.recipes import RECIPE_DIR
from diffbmp.fitting.image import build_config

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(RECIPE_DIR.glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_are_valid_and_round_trip():
    config = FitConfig()
    assert config.n == 1000 and config.optim.lr.means == 0.002 and config.primitives == ["circle"]
    again = config_from_dict(yaml.safe_load(dump_config(config)))
    assert again == config


def test_recipes_exist_and_validate():
    names = {path.name for path in RECIPES}
    assert {"default.yaml", "circles.yaml", "brush_strokes.yaml", "stamps_own_colours.yaml", "text_glyphs.yaml", "constrained.yaml"} <= names
    for path in RECIPES:
        load_config(path)


def test_circles_recipe_is_the_benchmark():
    config = load_config("circles")
    assert (config.n, config.steps, config.size, config.primitives) == (2048, 4096, 256, ["circle"])


def test_misspelt_key_is_named_with_its_location_and_a_suggestion(tmp_path):
    path = write(tmp_path, "optim:\n  lr:\n    mean: 0.5\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "`optim.lr.mean`" in message and "did you mean `means`?" in message and str(path) in message


def test_misspelt_top_level_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key `stpes`; did you mean `steps`\?"):
        load_config(write(tmp_path, "stpes: 100\n"))


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "steps: many\n"))
    message = str(error.value)
    assert "`steps` = 'many'" in message and "integer" in message and ">= 1" in message


def test_out_of_range_names_key_value_and_range(tmp_path):
    with pytest.raises(ConfigError, match=r"`size` = 2 is out of range \(allowed: >= 8 and <= 16384\)"):
        load_config(write(tmp_path, "size: 2\n"))
    with pytest.raises(ConfigError, match=r"`init.opacity` = 1.5 is out of range \(allowed: >= 0.01 and <= 0.99\)"):
        load_config(write(tmp_path, "init:\n  opacity: 1.5\n"))


def test_choice_errors_suggest_the_nearest_choice(tmp_path):
    with pytest.raises(ConfigError, match=r"`init.method` = 'structur' is not one of .*did you mean 'structure'\?"):
        load_config(write(tmp_path, "init:\n  method: structur\n"))


def test_several_problems_are_listed_together(tmp_path):
    with pytest.raises(ConfigError, match="2 problems") as error:
        load_config(write(tmp_path, "size: 2\nsteps: -1\n"))
    assert "`size`" in str(error.value) and "`steps`" in str(error.value)


def test_set_overrides_with_the_same_validation(tmp_path):
    path = write(tmp_path, "n: 10\n")
    config = load_config(path, ["optim.lr.means=0.5", "n=20", "primitives=[circle, gaussian]", "background.color=[0.1, 0.2, 0.3]"])
    assert config.optim.lr.means == 0.5 and config.n == 20
    assert config.primitives == ["circle", "gaussian"] and config.background.color == [0.1, 0.2, 0.3]
    with pytest.raises(ConfigError, match=r"`optim.lr.mean` \(from --set optim.lr.mean=0.5\); did you mean `means`"):
        load_config(path, ["optim.lr.mean=0.5"])
    with pytest.raises(ConfigError, match=r"`optim.lr.means` = -1 \(from --set optim.lr.means=-1\) is out of range"):
        load_config(path, ["optim.lr.means=-1"])
    with pytest.raises(ConfigError, match="--set expects key=value"):
        load_config(path, ["optim.lr.means"])
    with pytest.raises(ConfigError, match="`n` is a value, not a section"):
        load_config(path, ["n.x=1"])


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "n: 10\ninit: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config.yaml' line \d+, column \d+ is not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_config_file_suggests_similar_names(tmp_path):
    (tmp_path / "circles.yaml").write_text("n: 5\n")
    with pytest.raises(ConfigError, match=r"does not exist\. Did you mean .*circles\.yaml"):
        load_config(tmp_path / "circle.yaml")


def test_colours():
    assert parse_color("white") == (1.0, 1.0, 1.0)
    assert parse_color("#ff8000") == (1.0, 128 / 255, 0.0)
    assert parse_color([0, 0.5, 1]) == (0.0, 0.5, 1.0)
    for bad in ("mauve", [1, 2, 3], [0.1, 0.2], "#12345"):
        with pytest.raises(ValueError):
            parse_color(bad)


def test_python_options_build_the_same_config():
    from_kwargs = build_config(None, n=64, optim__lr__means=0.003, blur={"start": 2.0}, primitives="gaussian")
    from_set = load_config(None, ["n=64", "optim.lr.means=0.003", "blur.start=2.0", "primitives=gaussian"])
    assert from_kwargs == from_set
    based = build_config(from_kwargs, optim={"lr": {"colors": 0.1}})
    assert based.optim.lr.means == 0.003 and based.optim.lr.colors == 0.1  # sections merge, not replace
    with pytest.raises(ConfigError, match="did you mean `detail_mix`"):
        build_config(None, init={"detail_mixx": 0.5})


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_docs_list_every_key_and_are_up_to_date():
    reference = config_reference()
    docs = (ROOT / "docs" / "fitting.md").read_text()
    block = docs.split(REFERENCE_START)[1].split(REFERENCE_END)[0].strip()
    for key in _keys(FitConfig):
        assert f"| `{key}` |" in reference
    assert block == reference.strip(), "docs/fitting.md is out of date: run python -m diffbmp.config docs/fitting.md"
