"""Finding, building and choosing backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import diffbmp
from diffbmp import BackendUnavailableError, InputError, _backend, _build_spec, composite

from scenes import make_bank, random_params


def test_import_builds_nothing():
    code = "import diffbmp, diffbmp._backend as b; print(len(b._modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
    assert "compiling" not in out.stderr


def test_every_source_of_the_build_exists():
    csrc = _backend.csrc_dir()
    for kind in ("cpu", "cuda"):
        for path in _build_spec.sources(kind, str(csrc)):
            assert Path(path).is_file(), path
    for path in _build_spec.include_dirs(str(csrc)):
        assert Path(path, "diffbmp", "constants.h").is_file()


def test_explicit_backend_choices_are_checked():
    cpu = torch.device("cpu")
    assert _backend.resolve_backend("torch", cpu) == "torch"
    assert _backend.resolve_backend("cpu", cpu) == "cpu"
    with pytest.raises(InputError, match="backend='cuda' needs the parameters on a CUDA device"):
        _backend.resolve_backend("cuda", cpu)
    with pytest.raises(InputError, match="unknown backend 'metal'"):
        _backend.resolve_backend("metal", cpu)


def test_automatic_choice_on_the_cpu_is_the_native_backend():
    assert _backend.resolve_backend(None, torch.device("cpu")) == "cpu"


def test_a_failed_build_falls_back_to_the_reference_with_a_warning(monkeypatch):
    def broken(kind):
        raise BackendUnavailableError("the cpu backend could not be compiled: no compiler")

    monkeypatch.setattr(_backend, "native_module", broken)
    monkeypatch.setattr(_backend, "_warned_fallback", False)
    bank = make_bank()
    params = random_params(10, 12, 14, seed=0)
    with pytest.warns(RuntimeWarning, match="Falling back to the slow torch backend"):
        image, _ = composite(params, bank, None, 12, 14)
    reference, _ = composite(params, bank, None, 12, 14, backend="torch")
    assert torch.equal(image, reference)
    # Asking for the cpu backend explicitly reports the failure instead.
    monkeypatch.setattr(diffbmp.render, "native_module", broken)
    with pytest.raises(BackendUnavailableError, match="no compiler"):
        composite(params, bank, None, 12, 14, backend="cpu")
