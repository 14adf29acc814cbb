"""The fast reader of pack and scenario files: libyaml's C parser, composed here.

ruamel's round-trip loader (``yaml_ruamel``) is a pure-Python parser that keeps every line
number: about 8 s for a 10,000-rule pack, most of a cold load. Packs are plain
data (mappings, lists, scalars), which libyaml (PyYAML's C binding) parses about 30 times
faster. This module composes libyaml's events into dicts and lists that carry their line
numbers the way ruamel's nodes do (``.lc.line``, ``.lc.key(k)``, ``.lc.item(i)``), so
everything after parsing (``line_of``, the condition parser) works unchanged.

It reads only the common case, and says :class:`NotCommon` for anything else: an alias, an
anchor, a tag, a directive, several documents, a duplicate key, a key that is not a scalar,
a plain scalar that ruamel's YAML 1.2 resolver reads as anything but a string, null, bool,
decimal int or plain float, a character YAML refuses, a cap of ``pack_limits`` reached, or
any error of libyaml's. The caller then reads the text with ruamel, which gives the result,
or the refusal and its message, exactly as before: the two readers never disagree on a
message, because only ruamel ever gives one.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from . import pack_limits

__all__ = ["NotCommon", "available", "load", "YamlMap", "YamlSeq", "Lines"]


class NotCommon(Exception):
    """The text is not a plain pack: read it with ruamel (see the module's docstring)."""


class Lines:
    """Where a mapping's keys or a list's items start, as ruamel's ``.lc`` gives them
    (0-based line and column)."""

    __slots__ = ("line", "col", "_at")

    def __init__(self, line: int, col: int) -> None:
        self.line, self.col = line, col
        self._at: dict[Any, tuple[int, int]] = {}

    def key(self, key: Any) -> tuple[int, int]:
        return self._at[key]

    def item(self, index: int) -> tuple[int, int]:
        return self._at[index]

    def value(self, key: Any) -> tuple[int, int]:
        return self._at[key]


class YamlMap(dict):  # type: ignore[type-arg]
    """A mapping read from YAML, with its keys' lines (``.lc``)."""

    __slots__ = ("lc",)


class YamlSeq(list):  # type: ignore[type-arg]
    """A list read from YAML, with its items' lines (``.lc``)."""

    __slots__ = ("lc",)


_STR, _NULL, _BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{t}" for t in ("str", "null", "bool", "int", "float"))
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]{0,39})")
_PLAIN_FLOAT = re.compile(r"[-+]?(?:[0-9]{1,40}\.[0-9]{0,40}|\.[0-9]{1,40})(?:[eE][-+]?[0-9]{1,3})?")
_TRUE = frozenset(("true", "True", "TRUE"))

_parser: Any = None
_events: tuple[type, ...] | None = None
_resolve: Callable[[str], str] | None = None
_non_printable: Any = None


def available() -> bool:
    """Whether libyaml's parser can be used (PyYAML built with it)."""
    global _parser, _events, _resolve, _non_printable
    if _events is None:
        try:
            from yaml import events  # type: ignore[import-untyped]
            from yaml._yaml import CParser  # type: ignore[import-untyped]
        except ImportError:
            _events = ()
            return False
        from ruamel.yaml.nodes import ScalarNode
        from ruamel.yaml.reader import Reader
        from ruamel.yaml.resolver import VersionedResolver

        resolver = VersionedResolver()
        by_first = resolver.versioned_resolver  # first character -> the implicit resolvers to try
        # a plain scalar whose first character no resolver is keyed by is a string (as
        # ruamel's ``resolve`` decides it), unless some resolver applies to every scalar
        first = frozenset(k for k in by_first if k) if not by_first.get(None) else None

        def resolve(text: str) -> str:
            if first is not None and text and text[0] not in first:
                return _STR
            return str(resolver.resolve(ScalarNode, text, (True, False)))

        _resolve = resolve
        _non_printable = Reader.NON_PRINTABLE
        _parser = CParser
        _events = (events.ScalarEvent, events.MappingStartEvent, events.SequenceStartEvent, events.MappingEndEvent,
                   events.SequenceEndEvent, events.DocumentStartEvent, events.DocumentEndEvent,
                   events.StreamStartEvent, events.StreamEndEvent)
    return bool(_events)


def _plain(text: str, memo: dict[str, Any]) -> Any:
    """A plain scalar as ruamel's round-trip loader types it (with plain built-in types)."""
    try:
        return memo[text]
    except KeyError:
        pass
    assert _resolve is not None
    tag = _resolve(text)
    value: Any
    if tag == _STR:
        value = text
    elif tag == _NULL:
        value = None
    elif tag == _BOOL:
        value = text in _TRUE
    elif tag == _INT and _DECIMAL.fullmatch(text):
        value = int(text)
    elif tag == _FLOAT and _PLAIN_FLOAT.fullmatch(text):
        value = float(text)
    else:  # octal, hex, underscores, .inf, dates, merge keys: ruamel's own constructors
        raise NotCommon(text)
    if len(memo) < 100_000:
        memo[text] = value
    return value


_BLOCK_HEADER = re.compile(r"[|>](?:[-+][1-9]?|[1-9][-+]?)?(?:[ ]+#[^\n]*)?[ \r]*")


def _plain_block(text: str, start: int) -> bool:
    """Whether the block scalar whose indicator is at ``start`` has a header as the spec
    writes it and a first line that is not blank (ruamel refuses some headers and some
    indentations of leading blank lines that libyaml reads)."""
    end = text.find("\n", start)
    if end < 0 or not _BLOCK_HEADER.fullmatch(text, start, end):
        return False
    nxt = text.find("\n", end + 1)
    return bool(text[end + 1:nxt if nxt >= 0 else len(text)].strip(" \r"))


def load(text: str) -> Any:
    """The one document of ``text`` as :class:`YamlMap`, :class:`YamlSeq` and plain scalars,
    within ``pack_limits``' YAML caps; :class:`NotCommon` for anything else."""
    if not available():
        raise NotCommon("libyaml is not available")
    assert _events is not None and _non_printable is not None
    if "\t" in text or _non_printable.search(text):
        raise NotCommon("a tab (libyaml allows some that ruamel refuses), or a character YAML refuses")
    (scalar_ev, mapping_ev, sequence_ev, mapping_end, sequence_end, doc_start, doc_end, stream_start,
     stream_end) = _events
    max_depth, max_nodes = pack_limits.MAX_YAML_DEPTH, pack_limits.MAX_YAML_NODES
    skip = 1 if text.startswith("\ufeff") else 0  # libyaml's marks count from after a byte order mark
    parser = _parser(text)
    try:
        get = parser.get_event
        try:
            if type(get()) is not stream_start:
                raise NotCommon("no stream")
            ev: Any = get()
            if type(ev) is not doc_start or getattr(ev, "version", None) is not None or getattr(ev, "tags", None):
                raise NotCommon("not one plain document")
            memo: dict[str, Any] = {}
            nodes = 0
            root: Any = None
            # open collections: [container, lines, is_mapping, pending key, its position]
            stack: list[list[Any]] = []
            missing = stack  # a marker: no key pending
            while True:
                ev = get()
                kind = type(ev)
                if kind is mapping_end or kind is sequence_end:
                    stack.pop()
                    continue
                if kind is doc_end:
                    break
                if kind is not scalar_ev and kind is not mapping_ev and kind is not sequence_ev:
                    raise NotCommon(kind.__name__)  # an alias
                if ev.anchor is not None or ev.tag is not None:
                    raise NotCommon("an anchor or a tag")
                nodes += 1
                if nodes > max_nodes or len(stack) >= max_depth:
                    raise NotCommon("a cap")  # ruamel refuses it at the right line
                mark = ev.start_mark
                node: Any
                lines: Lines | None = None
                if kind is scalar_ev:
                    style = ev.style
                    if style == "":
                        node = _plain(ev.value, memo)
                    else:
                        if (style == "|" or style == ">") and not _plain_block(text, mark.index + skip):
                            raise NotCommon("a block scalar ruamel may read otherwise")
                        node = ev.value
                else:
                    if kind is mapping_ev and ev.flow_style and not text.startswith("{", mark.index + skip):
                        raise NotCommon("a single-pair mapping in a flow list")  # ruamel refuses some
                    node = YamlMap() if kind is mapping_ev else YamlSeq()
                    node.lc = lines = Lines(mark.line, mark.column)
                if stack:
                    top = stack[-1]
                    if top[2]:  # a mapping: a key, then its value
                        if top[3] is missing:
                            if lines is not None or node in top[0]:
                                raise NotCommon("a key that is not a scalar, or a duplicate key")
                            top[3], top[4] = node, (mark.line, mark.column)
                            continue
                        top[0][top[3]] = node
                        top[1]._at[top[3]] = top[4]
                        top[3] = missing
                    else:
                        top[1]._at[len(top[0])] = (mark.line, mark.column)
                        top[0].append(node)
                else:
                    root = node
                if lines is not None:
                    stack.append([node, lines, kind is mapping_ev, missing, None])
            if type(get()) is not stream_end:
                raise NotCommon("several documents")
        except NotCommon:
            raise
        except Exception as exc:  # libyaml's errors: ruamel gives the message
            raise NotCommon(str(exc)) from None
    finally:
        parser.dispose()
    if isinstance(root, dict):
        for key, cap in (("rules", pack_limits.MAX_RULES_PER_PACK), ("gestures", pack_limits.MAX_GESTURES_PER_PACK)):
            if isinstance(root.get(key), list) and len(root[key]) > cap:
                raise NotCommon("a cap")
    return root
