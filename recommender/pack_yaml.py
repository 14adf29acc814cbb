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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from . import pack_limits
from .errors import PackProblem, RulePackError

__all__ = ["read_pack_file", "parse_pack_text"]


class _Refused(Exception):
    def __init__(self, line: int | None, field_path: str, message: str):
        self.line, self.field_path, self.message = line, field_path, message
        super().__init__(message)


def _line(event: Any) -> int | None:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


class _PackComposer(Composer):
    """ruamel's composer, refusing aliases and counting nodes, depth and list items."""

    #: what the file is, in messages ("a rule pack", "a scenario file")
    kind = "a rule pack"

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.nodes = 0
        #: while the top-level ``rules``/``gestures`` list is composed: (key, cap)
        self.counted: tuple[str, int] | None = None

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            anchor = self.anchors.get(event.anchor)
            where = f" (to the anchor &{event.anchor} at line {anchor.start_mark.line + 1})" if anchor else ""
            raise _Refused(_line(event), "", f"YAML alias *{event.anchor}{where} is not allowed in {self.kind}: "
                                              "aliases are refused (they can hide exponentially large data); "
                                              "write the value out")
        self.nodes += 1
        if self.nodes > pack_limits.MAX_YAML_NODES:
            raise _Refused(_line(event), "", f"more than {pack_limits.MAX_YAML_NODES} YAML nodes in one pack file; "
                                              "split it into several packs")
        if self.depth >= pack_limits.MAX_YAML_DEPTH:
            raise _Refused(_line(event), "", f"YAML nested deeper than {pack_limits.MAX_YAML_DEPTH} levels")
        if self.counted is not None and self.depth == 2 and isinstance(index, int):
            key, cap = self.counted
            if index >= cap:
                raise _Refused(_line(event), key, f"more than {cap} {key} in one pack; split it into several packs")
        if self.depth == 1 and isinstance(parent, MappingNode) and isinstance(index, ScalarNode):
            caps = {"rules": pack_limits.MAX_RULES_PER_PACK, "gestures": pack_limits.MAX_GESTURES_PER_PACK}
            if index.value in caps:
                self.counted = (index.value, caps[index.value])
                try:
                    return super().compose_node(parent, index)
                finally:
                    self.counted = None
        return super().compose_node(parent, index)


class _ScenarioComposer(_PackComposer):
    kind = "a scenario file"


def _plain_scalar(value: Any) -> Any:
    """``value`` as its built-in type if it is one of ruamel's round-trip scalar subclasses."""
    if isinstance(value, ScalarBoolean):  # an int subclass: test it first
        return bool(value)
    for kind in (str, int, float):
        if isinstance(value, kind) and type(value) is not kind and not isinstance(value, bool):
            return kind(value)
    return value


class _PlainScalarConstructor(RoundTripConstructor):
    """The round-trip constructor, with every scalar a plain built-in (module docstring)."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        value = super().construct_object(node, deep=deep)
        return _plain_scalar(value) if isinstance(node, ScalarNode) else value


def parse_pack_text(text: str, path: str, composer: type[_PackComposer] = _PackComposer) -> Any:
    """Parse a pack's YAML text (ruamel nodes keep line numbers); raise ``RulePackError``."""
    yaml = YAML(typ="rt", pure=True)
    yaml.Composer = composer
    yaml.Constructor = _PlainScalarConstructor
    try:
        return yaml.load(text)
    except _Refused as exc:
        raise RulePackError([PackProblem(path, exc.line, exc.field_path, exc.message)]) from None
    except ReaderError as exc:  # a character YAML does not allow (NUL, most control characters)
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise RulePackError([PackProblem(path, line, "", f"invalid YAML: unacceptable character {what} "
                                                         f"({exc.reason})")]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise RulePackError([PackProblem(path, line, "", f"invalid YAML: {exc.problem or exc}")]) from None
    except (YAMLError, ValueError, RecursionError) as exc:
        # ruamel raises a few unmarked errors (unacceptable characters, a number too long
        # for int(), ...): still one problem for this file, never a traceback
        raise RulePackError([PackProblem(path, None, "", f"invalid YAML: {exc}")]) from None


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
    return parse_pack_text(text, where, _ScenarioComposer if scenario else _PackComposer)


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
