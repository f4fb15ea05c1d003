"""Writing values into Tcl source: words, lists and the ``config.tcl`` that drives the templates.

The overlay templates are fixed Tcl files; everything that differs between designs and boards
is written once into ``config.tcl`` as ``set fd(key) value`` lines. Values are quoted here so
that a path with spaces or a property value like ``FIXED_IO, DDR`` reaches Vivado as one word.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping, Union

TclValue = Union[str, int, float, Path, Iterable, Mapping]

_BARE = re.compile(r"[A-Za-z0-9_.:/+\-=,@%]+")


def tcl_word(value) -> str:
    """One Tcl word for ``value`` (a string, number or path), brace-quoted when needed."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float):
        value = f"{value:g}"
    s = str(value)
    if _BARE.fullmatch(s):
        return s
    if "{" in s or "}" in s or "\\" in s or "\n" in s:
        raise ValueError(f"cannot write {s!r} into Tcl safely (braces, backslashes or newlines)")
    return "{" + s + "}"


def tcl_list(values: Iterable) -> str:
    """A Tcl list of words: ``a {b c} d``; ``{}`` when empty."""
    words = [tcl_word(v) for v in values]
    return " ".join(words) if words else "{}"


def tcl_kv(mapping: Mapping) -> str:
    """A Tcl dict-style list ``k1 v1 k2 v2`` (for ``set_property -dict`` or automation configs)."""
    return tcl_list(x for kv in mapping.items() for x in kv)


def config_tcl(values: Mapping[str, object], header: str) -> str:
    """The text of ``config.tcl``: ``set fd(key) value`` per entry, in order.

    Lists and tuples become Tcl lists; mappings become key/value lists (already-rendered
    strings are taken as one word). ``header`` is written as comment lines on top.
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    width = max(len(k) for k in values) if values else 0
    for key, value in values.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            raise ValueError(f"bad config key {key!r}")
        if isinstance(value, Mapping):
            text = "{" + tcl_kv(value) + "}"
        elif isinstance(value, (list, tuple)):
            text = "{" + tcl_list(value) + "}" if value else "{}"
        else:
            text = tcl_word(value)
        lines.append(f"set fd({key}){' ' * (width - len(key))} {text}")
    return "\n".join(lines) + "\n"
