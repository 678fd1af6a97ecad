"""Colour management: images read are converted to sRGB, images written are tagged sRGB.

diffbmp paints in sRGB (the compositor blends the numbers it is given, and every viewer
shows untagged pixels as sRGB). A photo tagged with a wider space (ProPhoto RGB, Display P3,
Adobe RGB) holds numbers that mean other colours: read as they are, they look washed out.
"""

from __future__ import annotations

import functools

__all__ = ["srgb_icc_profile"]


@functools.lru_cache(maxsize=1)
def srgb_icc_profile() -> bytes:
    """The bytes of an sRGB ICC profile (LittleCMS's built-in sRGB), for files that embed one
    (PSD, PNG's iCCP)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
