"""Reading one rule pack file, bounded before anything is expanded.

YAML aliases are refused while the file is parsed. An alias (``*w0``) shares a node, and
nested aliases describe exponentially large data in a few hundred bytes (a 900-byte pack of
20 nested aliases expands to a million conditions); everything after parsing (validation,
the digest, DNF) walks the expanded tree. Refusing aliases outright keeps packs plain data
that reads the same to a person as to the loader; an anchor alone (``&w0``) shares nothing
and is ignored.

Scalars come out as plain ``str``, ``int``, ``float`` and ``bool``: ruamel's round-trip scalars
are subclasses (an anchored ``&t meet`` is a ``PlainScalarString``, an anchored ``true`` a
``ScalarBoolean``, which is an ``int``), which strict fields refuse, and pydantic 2.7 (our
lower bound) refuses as a ``Literal``'s value. Mappings and lists stay round-trip objects:
they carry the line numbers the messages need.

Also while parsing: the file's size, the YAML nesting depth and node count, and the number
of rules and gestures are capped (``pack_limits``), so an oversized file stops at the line
that crossed the cap instead of loading for minutes. Bytes must be UTF-8.

Two readers give one result. The common case (plain mappings, lists and scalars: what packs
are) is read by libyaml's C parser (``yaml_fast``, about 30 times faster); anything else
(an alias, an anchor, a tag, a cap reached, an error, ...) by ruamel's round-trip loader with
the bounded composer (``yaml_ruamel``), which gives every refusal and its message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import pack_limits
from .errors import PackProblem, RulePackError

__all__ = ["read_pack_file", "parse_pack_text"]


def parse_pack_text(text: str, path: str, scenario: bool = False) -> Any:
    """Parse a pack's (or a scenario file's) YAML text into mappings and lists that keep
    their line numbers (``.lc``); raise ``RulePackError``. The common case is read by
    libyaml (``yaml_fast``), anything else by ruamel's bounded reader (``yaml_ruamel``),
    which gives every refusal and its message."""
    from . import yaml_fast

    try:
        return yaml_fast.load(text)
    except yaml_fast.NotCommon:
        from . import yaml_ruamel

        return yaml_ruamel.parse(text, path, scenario)


def read_yaml_file(path: Path, cap: int, scenario: bool = False) -> Any:
    """Read one YAML file of at most ``cap`` bytes of UTF-8, parsed as bounded YAML (no
    aliases, node and depth caps) with line numbers; every problem a ``RulePackError``."""
    where = str(path)
    what = "one scenario file" if scenario else "one pack"
    try:
        with path.open("rb") as f:
            raw = f.read(cap + 1)
    except OSError as exc:
        raise RulePackError([PackProblem(where, None, "", f"cannot read: {exc.strerror or exc}")]) from None
    if len(raw) > cap:
        raise RulePackError([PackProblem(where, None, "", f"the file is larger than {cap // 1024} KiB, the cap for "
                                                          f"{what}; split it into several {'files' if scenario else 'packs'}")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RulePackError([PackProblem(where, line, "", f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset "
                                                          f"{exc.start}; save the file as UTF-8")]) from None
    if not text.strip():
        raise RulePackError([PackProblem(where, None, "", "the file is empty")])
    return parse_pack_text(text, where, scenario)


def read_pack_file(path: Path) -> Any:
    """Read one pack file: at most ``MAX_PACK_BYTES`` of UTF-8, parsed as bounded YAML."""
    return read_yaml_file(path, pack_limits.MAX_PACK_BYTES)


def line_of(root: Any, loc: Sequence[Any]) -> int | None:
    """Walk ruamel nodes along a pydantic ``loc`` and return the deepest known line."""
    node, line = root, None
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                pos = lc.item(key) if isinstance(key, int) else lc.key(key)
                line = int(pos[0]) + 1
            node = node[key]
        except Exception:
            break
    return line


def loc_str(loc: Sequence[Any]) -> str:
    """A pydantic ``loc`` as a field path: ``rules[2].when``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
