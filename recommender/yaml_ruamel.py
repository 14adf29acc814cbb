"""The bounded ruamel reader of pack and scenario files (see ``pack_yaml``).

ruamel's round-trip loader, with a composer that refuses aliases and caps nodes, nesting and
the rules and gestures of a pack while it parses, and a constructor giving plain scalars.
Every message about a pack's YAML comes from here; ``yaml_fast`` reads the common case
faster and leaves everything else to this reader. Imported only when a file is parsed.
"""

from __future__ import annotations

from typing import Any

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

__all__ = ["parse"]


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


def parse(text: str, path: str, scenario: bool = False) -> Any:
    """Parse a pack's (or a scenario file's) YAML text with ruamel's round-trip loader (its
    nodes keep line numbers); raise ``RulePackError``."""
    yaml = YAML(typ="rt", pure=True)
    yaml.Composer = _ScenarioComposer if scenario else _PackComposer
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
