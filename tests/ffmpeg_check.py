"""Whether imageio-ffmpeg and its ffmpeg binary are here: machines without them (the GPU
machines among them) skip what needs MP4 files."""

from __future__ import annotations

from pathlib import Path

import pytest


def _have_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg

        return Path(imageio_ffmpeg.get_ffmpeg_exe()).is_file()
    except Exception:  # not installed, or no binary for this platform
        return False


HAVE_FFMPEG = _have_ffmpeg()
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="imageio-ffmpeg's ffmpeg binary is not available")
