"""Fonts of ``text:`` primitives: the ``text:<characters>@<font>`` syntax and font look-up.

A font is named by a file path (``/path/to/font.ttf``), a font file name (``DejaVuSans.ttf``),
or a family or full name (``DejaVu Serif``, ``DejaVu Serif Bold``, ``serif``). Names are
looked up with fontconfig's ``fc-match`` where it is installed (its answer is accepted only
when its family is the one asked for, since fc-match always answers with *some* font), else
by searching the usual font folders by file, family and full name. ``None`` is Pillow's
built-in font (Aileron Regular: Latin letters, digits, punctuation), whose TrueType bytes
Pillow embeds.

Spec syntax (the part after ``text:``): a single ``@`` separates the characters from the font,
``@@`` is a literal at-sign, and a lone ``@`` is the at-sign itself::

    text:Aa                    "Aa" in the bank's font (Pillow's built-in one by default)
    text:Aa@DejaVu Serif       "Aa" in DejaVu Serif
    text:Aa@/fonts/My.ttf      "Aa" in that file
    text:me@@home              "me@home"
    text:@                     "@"

The entry's source keeps the font both as asked and as the file it resolved to
(``text:Aa@DejaVu Serif|/usr/share/fonts/.../DejaVuSerif.ttf``, see :func:`text_source`), so a
scene re-made at another resolution uses the same font, and a scene moved to another machine
finds it again by name when the file is elsewhere.
"""

from __future__ import annotations

import difflib
import functools
import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["FontRef", "TextSpec", "parse_text_spec", "format_text", "text_source", "resolve_font",
           "builtin_font_bytes", "installed_font_names", "FONT_DIRS", "FC_MATCH_TIMEOUT"]

#: Folders searched for fonts when fontconfig is missing (or does not know a name).
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts",
             "/Library/Fonts", "/System/Library/Fonts", "~/Library/Fonts", "C:/Windows/Fonts",
             "~/AppData/Local/Microsoft/Windows/Fonts")
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
#: Seconds fc-match may take before it counts as unavailable.
FC_MATCH_TIMEOUT = 5.0
#: Generic family names fontconfig maps to a concrete font (any answer is accepted).
GENERIC_FAMILIES = {"serif", "sans-serif", "sans", "sansserif", "monospace", "mono", "cursive", "fantasy",
                    "system-ui", "emoji", "math"}
#: Separates the font as asked from the file it resolved to, in a stored source.
FILE_SEPARATOR = "|"

FONT_HINT = ("Name an installed font family (e.g. 'DejaVu Serif'; `fc-list : family` lists them), "
             "or pass the path of a .ttf or .otf file, e.g. '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf' "
             "(without a font, Pillow's built-in one draws the text)")


@dataclass(frozen=True)
class FontRef:
    """A font that was found.

    Attributes:
        path: the font file (absolute), or None for Pillow's built-in font.
        index: the font's number inside a collection (.ttc); 0 otherwise.
        asked: the name as given (a family, file name or path); None for the built-in font.
    """

    path: str | None
    index: int = 0
    asked: str | None = None

    @property
    def label(self) -> str:
        """How error messages name this font."""
        return self.asked or self.path or "built-in"

    @property
    def file_ref(self) -> str:
        """``path`` with ``#index`` appended for a font inside a collection."""
        if self.path is None:
            return ""
        return self.path if self.index == 0 else f"{self.path}#{self.index}"


@dataclass(frozen=True)
class TextSpec:
    """The parts of a ``text:`` spec: the characters and the font named after ``@`` (or None)."""

    text: str
    font: str | None


def parse_text_spec(body: str) -> TextSpec:
    """Split the part of a spec after ``text:`` into its characters and font (see the module
    docstring: ``@`` separates, ``@@`` is an at-sign, a lone ``@`` is the at-sign).

    Raises:
        InputError: a single ``@`` at the end, with no font after it.
    """
    if body == "@":
        return TextSpec("@", None)
    chars: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "@":
            chars.append(c)
            i += 1
        elif body[i + 1:i + 2] == "@":
            chars.append("@")
            i += 2
        else:
            font = body[i + 1:].strip()
            if not font:
                raise InputError(
                    f"the text primitive 'text:{body}' ends with '@' but names no font after it; write '@@' for an "
                    "at-sign (e.g. 'text:a@@b' draws 'a@b'), or name a font after a single '@', e.g. 'text:Aa@DejaVu Serif'"
                )
            return TextSpec("".join(chars), font)
    return TextSpec("".join(chars), None)


def format_text(text: str) -> str:
    """``text`` written for a spec: every ``@`` doubled."""
    return text.replace("@", "@@")


def text_source(text: str, font: FontRef) -> str:
    """The source string that re-makes a glyph entry: ``text:<characters>`` for the built-in
    font, ``text:<characters>@<file>`` for a font given by path, and
    ``text:<characters>@<name as asked>|<file>`` for one found by name. It is itself a spec
    :meth:`TextureBank.add` accepts."""
    if font.path is None:
        return f"text:{format_text(text)}"
    asked = font.asked or ""
    if not asked or _looks_like_path(asked):
        return f"text:{format_text(text)}@{font.file_ref}"
    return f"text:{format_text(text)}@{asked}{FILE_SEPARATOR}{font.file_ref}"


@functools.lru_cache(maxsize=1)
def builtin_font_bytes() -> bytes:
    """The TrueType bytes of Pillow's built-in scalable font (``ImageFont.load_default(size)``).

    Raises:
        InputError: this Pillow was built without FreeType and has only a bitmap font.
    """
    from PIL import ImageFont

    try:
        source = getattr(ImageFont.load_default(16), "path", None)
    except (OSError, ImportError, TypeError):
        source = None
    if isinstance(source, io.BytesIO):
        return source.getvalue()
    raise InputError("this Pillow has no built-in scalable font (it was built without FreeType); "
                     f"give text primitives a font. {FONT_HINT}")


def _looks_like_path(name: str) -> bool:
    return "/" in name or os.sep in name or name.startswith("~")


def _normal(name: str) -> str:
    """A name compared loosely: lower case, without spaces, dashes and underscores."""
    return re.sub(r"[\s\-_]", "", name).lower()


def _file_with_index(ref: str) -> tuple[str, int] | None:
    """``(path, index)`` for ``/path/font.ttf`` or ``/path/font.ttc#2`` when the file exists."""
    path = Path(ref).expanduser()
    if path.is_file():
        return str(path.resolve()), 0
    match = re.fullmatch(r"(.+)#(\d+)", ref)
    if match and Path(match.group(1)).expanduser().is_file():
        return str(Path(match.group(1)).expanduser().resolve()), int(match.group(2))
    return None


def resolve_font(name: str | None) -> FontRef:
    """Find the font called ``name``: a path, a font file name, or a family / full name
    (fontconfig first, then the font folders). ``None`` or an empty name is Pillow's built-in
    font. A stored ``<name>|<file>`` uses the file when it exists, else looks the name up again.

    Raises:
        InputError: no such file, or no installed font of that name (naming close matches).
    """
    if name is None or not str(name).strip():
        return FontRef(None)
    name = str(name).strip()
    if FILE_SEPARATOR in name:
        asked, stored = name.rsplit(FILE_SEPARATOR, 1)
        found = _file_with_index(stored.strip())
        if found is not None:
            return FontRef(found[0], found[1], asked.strip() or stored.strip())
        return resolve_font(asked)
    found = _file_with_index(name)
    if found is not None:
        return FontRef(found[0], found[1], name)
    if _looks_like_path(name):
        raise InputError(f"font file {name!r} does not exist. {FONT_HINT}")
    if name.lower().endswith(FONT_SUFFIXES):
        path = _find_font_file(name)
        if path is not None:
            return FontRef(path, 0, name)
    else:
        ref = _fc_match(name) or _search_by_name(name)
        if ref is not None:
            return ref
    raise InputError(f"no installed font is called {name!r}.{_close_matches_hint(name)} {FONT_HINT}")


def _close_matches_hint(name: str) -> str:
    names = installed_font_names()
    by_normal: dict[str, str] = {}
    for candidate in names:
        by_normal.setdefault(_normal(candidate), candidate)
    close = difflib.get_close_matches(_normal(name), list(by_normal), n=4, cutoff=0.5)
    return f" Installed fonts with a similar name: {', '.join(repr(by_normal[c]) for c in close)}." if close else ""


def _fc_match(name: str) -> FontRef | None:
    """fontconfig's best match for ``name`` when its family (or full name) is the one asked
    for; None when fc-match is missing, fails, or substitutes another family."""
    exe = shutil.which("fc-match")
    if exe is None:
        return None
    try:
        result = subprocess.run([exe, "-f", "%{file}\n%{index}\n%{family}\n%{fullname}\n%{postscriptname}\n", name],
                                capture_output=True, text=True, timeout=FC_MATCH_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = result.stdout.split("\n")
    if result.returncode != 0 or len(lines) < 5 or not lines[0]:
        return None
    file, index, family, fullname, psname = lines[:5]
    family_asked = _normal(name.split(":")[0])
    known = {_normal(n) for field in (family, fullname, psname) for n in field.split(",") if n}
    if family_asked not in known and family_asked not in GENERIC_FAMILIES:
        return None
    if not Path(file).is_file() or not file.lower().endswith(FONT_SUFFIXES):
        return None  # e.g. a Type 1 font, which fontTools does not draw
    return FontRef(str(Path(file).resolve()), int(index) if index.isdigit() else 0, name)


def _font_files() -> list[Path]:
    files: list[Path] = []
    roots = list(FONT_DIRS)
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        roots.append(os.path.join(xdg, "fonts"))
    for folder in roots:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for dirpath, _, names in os.walk(root):
            files.extend(Path(dirpath) / n for n in names if n.lower().endswith(FONT_SUFFIXES))
    return sorted(files)


def _find_font_file(file_name: str) -> str | None:
    """An installed font file called ``file_name`` (case-insensitive), or one Pillow finds."""
    wanted = file_name.lower()
    for path in _font_files():
        if path.name.lower() == wanted:
            return str(path.resolve())
    try:  # Pillow also looks in the Windows and XDG font folders
        from PIL import ImageFont

        source = getattr(ImageFont.truetype(file_name, 10), "path", None)
        return str(Path(source).resolve()) if isinstance(source, str) else None
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def _font_index() -> tuple[tuple[str, str, int, tuple[str, ...]], ...]:
    """``(file, stem, index, names)`` of every installed font: family, family + style, full
    and PostScript names, read with fontTools."""
    from fontTools.ttLib import TTCollection, TTFont

    rows = []
    for path in _font_files():
        try:
            fonts = TTCollection(str(path), lazy=True).fonts if path.suffix.lower() in (".ttc", ".otc") \
                else [TTFont(str(path), lazy=True)]
        except Exception:  # unreadable or not really a font: not offered
            continue
        for index, font in enumerate(fonts):
            try:
                table = font["name"]
                names = {rec.toStr().strip() for rec in table.names if rec.nameID in (1, 4, 6, 16) and rec.toStr().strip()}
                family = table.getDebugName(16) or table.getDebugName(1)
                style = table.getDebugName(17) or table.getDebugName(2)
                if family and style:
                    names.add(f"{family} {style}")
            except Exception:
                names = set()
            rows.append((str(path.resolve()), path.stem, index, tuple(sorted(names))))
    return tuple(rows)


def _search_by_name(name: str) -> FontRef | None:
    """An installed font whose family, full name, PostScript name or file stem is ``name``
    (loosely compared); a family name prefers its Regular/Book face."""
    wanted = _normal(name)
    exact = [row for row in _font_index() if wanted in {_normal(n) for n in row[3]} or _normal(row[1]) == wanted]
    if not exact:
        return None
    regular = [row for row in exact if _normal(row[1]).endswith(("regular", "book", "roman")) or _normal(row[1]) == wanted]
    path, _, index, _ = (regular or exact)[0]
    return FontRef(path, index, name)


def installed_font_names() -> list[str]:
    """Family and full names, and file names, of the fonts in the usual folders (for hints)."""
    names: set[str] = set()
    for path, stem, _, fonts in _font_index():
        names.update(fonts)
        names.add(Path(path).name)
    return sorted(names)
