"""Every cap on rule packs, in one place (listed in ``docs/engine.md``).

A pack is data written by people, but loading it must stay bounded whoever wrote it: these
caps are checked while reading (before anything is expanded or compiled) and each one is
reported as ``file:line: field.path: message`` like any other problem. They sit well above
what a real pack needs (the shipped packs hold 10-40 rules each; ``bench/`` and
``tests/test_scale.py`` load 10,000 rules in one pack) and well below where loading would
take minutes or the engine would misbehave.

Read them at run time (``pack_limits.MAX_RULES_PER_PACK``), not with ``from ... import``,
so a test can lower one.
"""

from __future__ import annotations

from .context import MAX_EXACT_INT

__all__ = [
    "MAX_PACK_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "MAX_RULES_PER_PACK", "MAX_GESTURES_PER_PACK",
    "MAX_RULES_PER_BOOK", "MAX_GESTURES_PER_BOOK", "MAX_CONDITION_DEPTH", "MAX_CONDITION_TESTS",
    "MAX_BRANCHES", "MAX_IN_VALUES", "MAX_EXACT_NUMBER", "MAX_PATTERN_CHARS",
]

# -- reading a file ------------------------------------------------------------------

#: Bytes in one pack file, checked before it is read. The YAML reader is pure Python
#: (it keeps line numbers): about 5 s for 1 MB, so this bounds a load to seconds. A
#: 10,000-rule pack written compactly fits; a bigger rulebook is split into packs.
MAX_PACK_BYTES = 2 * 1024 * 1024
#: Nesting of YAML collections (a rule's ``when`` sits at depth 4; each ``all``/``any`` adds 2).
MAX_YAML_DEPTH = 64
#: YAML nodes (every mapping, list and scalar) in one file, counted while it is read.
MAX_YAML_NODES = 500_000

# -- what a pack holds -----------------------------------------------------------------

#: Rules in one pack; counted while reading, so an oversized pack stops early.
MAX_RULES_PER_PACK = 10_000
#: Gestures in one pack.
MAX_GESTURES_PER_PACK = 2_000
#: Rules in force for one business (all packs, core and plugins). The compiler splits them
#: into rulesets of at most 256 (durable-rules itself stops at 4095 per ruleset), so this
#: bounds compile time and engine memory (about 1 MiB per 50 rules), not a ruleset.
MAX_RULES_PER_BOOK = 20_000
#: Gestures in force for one business.
MAX_GESTURES_PER_BOOK = 5_000

# -- one rule's conditions -------------------------------------------------------------

#: Nesting of ``all``/``any``/``not`` in one ``when``.
MAX_CONDITION_DEPTH = 16
#: Tests written in one ``when`` (before ``in`` lists and DNF expansion).
MAX_CONDITION_TESTS = 200
#: Alternatives (DNF branches) one ``when`` may expand to.
MAX_BRANCHES = 64
#: Values in one ``in``/``not_in`` list.
MAX_IN_VALUES = 50
#: Largest magnitude of a numeric threshold: durable-rules saturates integers at int64 and
#: compares the rest as doubles, which are exact for integers only up to 2**53. Context ints
#: beyond 2**53 are sent as doubles (2**53 + 1 arrives as 2**53), so a threshold strictly
#: inside +-2**53 still orders them right: ``x gt 2**53 - 1`` holds for every larger ``x``.
MAX_EXACT_NUMBER = MAX_EXACT_INT - 1
#: Characters in a ``contains`` pattern on text. durable-rules compiles it to a DFA that
#: silently never matches past about 220 characters (fewer for repetitive patterns), and
#: some short repetitive patterns are refused outright; each distinct pattern is also tried
#: on the engine at load time (see ``packs.check_patterns``).
MAX_PATTERN_CHARS = 100
