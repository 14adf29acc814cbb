"""Scenario books: what a seasoned service manager expects, checked against the engine.

A scenario file (YAML) lists interaction contexts, each with what the answer must (and must
not) contain: gestures listed, offered or withheld, tiers, money bounds, approvals, the
family and severity, notes, near-miss hints and missing inputs. ``recommender rules test
FILE|DIR`` runs them and prints one ``file:line: scenario: expected ..., got ...`` line per
failed expectation. The format is documented in docs/scenarios.md.

Files are read with ruamel.yaml's round-trip loader, so every scenario and every
expectation knows its line; the models are strict (an unknown key is an error with a "did
you mean"), and every context and profile is validated before anything runs, so an invalid
file stops the run (exit 2) instead of failing scenarios one by one.

A run builds as few :class:`~recommender.core.Recommender` objects as it can: scenarios
whose business profiles cannot clash (different business ids, or the same profile) share
one, configured with ``profiles={<business id>: ...}``.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from typing_extensions import Annotated

from .context import MAX_NUMBER, STAFF_LEVELS, Business, Context, StaffLevel, field_kind, known_paths
from .errors import PackProblem, RecommenderError, RulePackError
from .pack_yaml import line_of, loc_str, read_yaml_file
from .issues import FAMILIES, SEVERITY_BANDS
from .profile import ProfileError, merge_profiles
from .results import RecommendationResult, Withheld

__all__ = ["ScenarioError", "ScenarioBook", "Scenario", "Expect", "Outcome", "Report", "load_books",
           "scenario_files", "run_books", "run_paths", "check"]

#: The largest scenario file read (bytes).
MAX_FILE_BYTES = 2 * 1024 * 1024
SUFFIXES = (".yaml", ".yml")
#: Withheld reasons that still count as *offered*: the gesture matched and was eligible,
#: and only the extras draw or the listing cap kept it off this listing.
OFFERED_REASONS = ("extras_rate", "listing_cap")
WITHHELD_REASONS: tuple[str, ...] = typing.get_args(Withheld.model_fields["reason"].annotation)
_ID = r"[a-z0-9][a-z0-9_.-]{0,79}"


class ScenarioError(RecommenderError):
    """One or more scenario files are invalid; ``problems`` names file, line and field."""

    def __init__(self, problems: Sequence[PackProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# -- the file format -------------------------------------------------------------------


def _gesture_ref(value: str) -> str:
    if not re.fullmatch(rf"{_ID}(\|{_ID})*", value):
        raise ValueError(f"{value!r} is not a gesture id (lower-case letters, digits, '_', '.', '-'); "
                         "write alternatives as 'one|other'")
    return value


def _gesture_id(value: str) -> str:
    if not re.fullmatch(_ID, value):
        raise ValueError(f"{value!r} is not a gesture id (lower-case letters, digits, '_', '.', '-')")
    return value


def _input_field(value: str) -> str:
    if field_kind(value) is None:
        close = difflib.get_close_matches(value, known_paths(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{value!r} is not a context field{hint}")
    return value


def _family(value: str | None) -> str | None:
    for part in (value.split("|") if value is not None else []):
        if part not in FAMILIES:
            close = difflib.get_close_matches(part, FAMILIES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown issue family {part!r}{hint}; families: {', '.join(FAMILIES)}")
    return value


GestureRef = Annotated[str, AfterValidator(_gesture_ref)]
GestureId = Annotated[str, AfterValidator(_gesture_id)]
InputField = Annotated[str, AfterValidator(_input_field)]
Tier = Literal["recover", "meet", "exceed"]
Reason = Literal[WITHHELD_REASONS]  # type: ignore[valid-type]
Severity = Annotated[int, Field(ge=0, le=4)]
Money = Annotated[float, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)]
Substring = Annotated[str, Field(min_length=1, max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class Expect(_Strict):
    """What the answer must show. Every key is optional; at least one must be given."""

    listed: list[GestureRef] = Field(default_factory=list, description="in the recommendations")
    not_listed: list[GestureRef] = Field(default_factory=list, description="not in the recommendations")
    offered: list[GestureRef] = Field(default_factory=list, description=(
        "listed, or withheld only by the extras draw or the listing cap (matched and eligible)"))
    not_offered: list[GestureRef] = Field(default_factory=list, description=(
        "neither listed nor withheld by the extras draw or the listing cap (it did not match, or was "
        "withheld for another reason)"))
    tiers: list[Tier] = Field(default_factory=list, description="each tier has a listed gesture")
    no_tiers: list[Tier] = Field(default_factory=list, description="no listed gesture of these tiers")
    needs_approval: list[GestureRef] = Field(default_factory=list, description=(
        "under needs_approval, carrying the script and the agent reason"))
    withheld: dict[GestureId, Reason] = Field(default_factory=dict, description="withheld with this reason")
    max_cost: Money | None = Field(default=None, description="total cost of the listed gestures, at most")
    min_cost: Money | None = Field(default=None, description="total cost of the listed gestures, at least")
    max_listed: Annotated[int, Field(ge=0, le=1000)] | None = None
    family: Annotated[str | None, AfterValidator(_family)] = Field(default=None, description=(
        "the assessed family ('one|other': either); null: an unknown issue code"))
    severity: Severity | None = None
    min_severity: Severity | None = None
    max_severity: Severity | None = None
    notes_contain: list[Substring] = Field(default_factory=list, description="each in some note (any case)")
    near_miss_hints: list[Substring] = Field(default_factory=list, description=(
        "each in some near-miss hint an agent is shown (explain, top 5)"))
    missing_inputs: list[InputField] = Field(default_factory=list, description="each in missing_inputs")
    scripts_not_contain: list[Substring] = Field(default_factory=list, description=(
        "in no script of a listed or approval gesture (any case)"))

    _lines: dict[str, int] = PrivateAttr(default_factory=dict)
    _items: dict[tuple[str, Any], int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _sane(self) -> "Expect":
        if not self.model_fields_set:
            raise ValueError("give at least one expectation (listed, not_listed, offered, tiers, severity, ...)")
        if self.min_cost is not None and self.max_cost is not None and self.min_cost > self.max_cost:
            raise ValueError(f"min_cost {self.min_cost:g} is above max_cost {self.max_cost:g}")
        if self.min_severity is not None and self.max_severity is not None and self.min_severity > self.max_severity:
            raise ValueError(f"min_severity {self.min_severity} is above max_severity {self.max_severity}")
        for a, b in (("listed", "not_listed"), ("offered", "not_offered"), ("tiers", "no_tiers")):
            both = set(getattr(self, a)) & set(getattr(self, b))
            if both:
                raise ValueError(f"{', '.join(sorted(both))} in both {a} and {b}")
        return self

    def line(self, key: str, item: Any = None) -> int | None:
        if item is not None and (key, item) in self._items:
            return self._items[(key, item)]
        return self._lines.get(key)


class Scenario(_Strict):
    """One interaction and what a seasoned service manager expects of the answer."""

    name: Annotated[str, Field(min_length=1, max_length=300)]
    context: dict[str, Any]
    #: A partial business profile, merged over the file's ``profile``.
    profile: dict[str, Any] | None = None
    #: Shortcut for ``context.staff.level``.
    staff: StaffLevel | None = None
    expect: Expect
    #: The engine's answer is known to be wrong here (say why): a failure is reported as a
    #: known issue, not a failure, until it passes (``--strict`` counts it as a failure).
    known_issue: Annotated[str, Field(min_length=1, max_length=2000)] | None = None

    _line: int = PrivateAttr(default=0)
    _file: str = PrivateAttr(default="")
    #: the context as run: the file's business merged in, the staff shortcut applied
    _context: dict[str, Any] = PrivateAttr(default_factory=dict)
    _profile: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def line(self) -> int:
        return self._line

    @property
    def file(self) -> str:
        return self._file

    @property
    def run_context(self) -> dict[str, Any]:
        return self._context

    @property
    def run_profile(self) -> dict[str, Any] | None:
        return self._profile

    @property
    def business_id(self) -> str:
        return str((self._context.get("business") or {}).get("id") or "default")


class ScenarioBook(_Strict):
    """One scenario file."""

    description: str | None = None
    #: Defaults for every scenario's ``context.business`` (the scenario's own keys win).
    business: Business | None = None
    #: A partial business profile for every scenario (a scenario's ``profile`` merges over it).
    profile: dict[str, Any] | None = None
    #: Plugins these scenarios need; without them (``--no-plugins``, not installed) the
    #: file is skipped and says so.
    requires_plugins: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list)
    scenarios: Annotated[list[Scenario], Field(min_length=1)]

    _file: str = PrivateAttr(default="")

    @property
    def file(self) -> str:
        return self._file


# -- reading ---------------------------------------------------------------------------


def scenario_files(paths: Iterable[str | Path]) -> list[Path]:
    """The scenario files named: files as given, folders searched for *.yaml / *.yml."""
    found: list[Path] = []
    problems: list[PackProblem] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.suffix in SUFFIXES and f.is_file())
            if not inside:
                problems.append(PackProblem(str(p), None, "", "no scenario files (*.yaml, *.yml) in this folder"))
            found.extend(inside)
        elif p.is_file():
            found.append(p)
        else:
            problems.append(PackProblem(str(p), None, "", "no such file or folder"))
    if problems:
        raise ScenarioError(problems)
    return list(dict.fromkeys(found))


def _parse(path: Path) -> Any:
    """The scenario file as ruamel nodes (line numbers kept), read as boundedly as a pack."""
    try:
        return read_yaml_file(path, MAX_FILE_BYTES, scenario=True)
    except RulePackError as exc:
        raise ScenarioError(exc.problems) from None


def _plain(node: Any) -> Any:
    """ruamel's round-trip nodes as plain Python values (dates as ISO text)."""
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, (datetime, date)):
        return node.isoformat()
    return node


def _model_at(loc: Sequence[Any]) -> Any:
    """The model (or type) a pydantic ``loc`` of a ScenarioBook points into."""
    node: Any = ScenarioBook
    if len(loc) >= 3 and loc[0] == "scenarios" and loc[2] == "context":
        node, loc = Context, loc[3:]
    for part in loc:
        while True:
            origin = typing.get_origin(node)
            if origin is Annotated:
                node = typing.get_args(node)[0]
            elif origin in (typing.Union, types.UnionType):
                node = next((a for a in typing.get_args(node) if a is not type(None)), None)
            else:
                break
        if isinstance(node, type) and issubclass(node, BaseModel):
            info = node.model_fields.get(str(part))
            node = info.annotation if info else None
        elif typing.get_origin(node) in (list, dict):
            node = typing.get_args(node)[-1]
        else:
            return None
    while typing.get_origin(node) is Annotated:
        node = typing.get_args(node)[0]
    return node


def _message(err: Mapping[str, Any], loc: Sequence[Any]) -> str:
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        keys = list(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        typo = str(loc[-1])
        close = [k for k in keys if k.startswith(typo)] or difflib.get_close_matches(typo, keys, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(keys)}" if keys else ""
        return f"unknown key {str(loc[-1])!r}{hint}"
    if err["type"] == "missing":
        return "required"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _problems_from(exc: ValidationError, root: Any, where: str, prefix: Sequence[Any] = (),
                   fallback: int | None = None) -> list[PackProblem]:
    out = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        out.append(PackProblem(where, line_of(root, loc) or fallback, loc_str(loc), _message(err, loc)))
    return out


def _merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Layered partial dicts, later wins, nested mappings merged key by key (as profiles merge)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = _merge(merged[key], value)
            else:
                merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


def _lines_of_expect(expect: Expect, node: Any) -> None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return
    for key in node:
        try:
            expect._lines[str(key)] = int(lc.key(key)[0]) + 1
        except Exception:
            continue
        value = node[key]
        vlc = getattr(value, "lc", None)
        if vlc is None:
            continue
        items = enumerate(value) if isinstance(value, list) else ((k, k) for k in value) if isinstance(value, Mapping) \
            else ()
        for i, item in items:
            try:
                pos = vlc.item(i) if isinstance(value, list) else vlc.key(i)
            except Exception:
                continue
            expect._items[(str(key), _plain(item))] = int(pos[0]) + 1


class _Header(_Strict):
    """A scenario file's own keys; each scenario is validated on its own, so one bad
    scenario does not hide the problems of the others."""

    description: str | None = None
    business: Business | None = None
    profile: dict[str, Any] | None = None
    requires_plugins: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list)
    scenarios: Annotated[list[Any], Field(min_length=1)]


def _profile_problems(layers: Sequence[Mapping[str, Any] | None], own: Mapping[str, Any] | None,
                      prefix: tuple[Any, ...], root: Any, where: str, fallback: int | None) -> list[PackProblem]:
    """Problems of the merged profile whose keys come from ``own`` (the layer at ``prefix``)."""
    try:
        merge_profiles(_merge(*layers), where="")
    except ProfileError as exc:
        out = []
        for key, msg in exc.errors:
            parts = [p for p in key.split(".") if p]
            if own is None or not _has(own, parts[:1]):
                continue
            loc = (*prefix, *parts)
            out.append(PackProblem(where, line_of(root, loc) or fallback, loc_str(loc), msg))
        return out
    return []


def load_book(path: str | Path) -> ScenarioBook:
    """Read and validate one scenario file; raise :class:`ScenarioError` naming every problem."""
    path = Path(path)
    where = str(path)
    root = _parse(path)
    if not isinstance(root, Mapping):
        raise ScenarioError([PackProblem(where, 1, "", "a scenario file is a mapping with a 'scenarios:' list "
                                                       "(see docs/scenarios.md)")])
    data = _plain(root)
    try:
        head = _Header.model_validate(data)
    except ValidationError as exc:
        problems = _problems_from(exc, root, where)
        if not isinstance(data.get("scenarios"), list):
            raise ScenarioError(problems) from None
        head = None
    else:
        problems = []
    business = head.business.model_dump(exclude_unset=True) if head and head.business else None
    file_profile = head.profile if head else None
    if file_profile is not None:
        problems += _profile_problems([file_profile], file_profile, ("profile",), root, where, 1)
    scenarios: list[Scenario] = []
    names: dict[str, int] = {}
    for i, item in enumerate(data.get("scenarios") or []):
        line = line_of(root, ("scenarios", i)) or 0
        prefix = ("scenarios", i)
        sc: Scenario | None = None
        try:
            sc = Scenario.model_validate(item)
        except ValidationError as exc:
            problems += _problems_from(exc, root, where, prefix, fallback=line)
        if not isinstance(item, Mapping):
            continue
        # the context as run: the file's business under the scenario's own, the staff shortcut
        ctx = dict(item["context"]) if isinstance(item.get("context"), Mapping) else None
        if ctx is not None:
            if business:
                own = ctx.get("business")
                ctx["business"] = _merge(business, own if isinstance(own, Mapping) else None)
            if item.get("staff") in STAFF_LEVELS:
                own = ctx.get("staff")
                ctx["staff"] = _merge(own if isinstance(own, Mapping) else None, {"level": item["staff"]})
            try:
                Context.model_validate(ctx)
            except ValidationError as exc:
                problems += _problems_from(exc, root, where, (*prefix, "context"), fallback=line)
        own_profile = item.get("profile") if isinstance(item.get("profile"), Mapping) else None
        if own_profile is not None:
            problems += _profile_problems([file_profile, own_profile], own_profile, (*prefix, "profile"), root,
                                          where, line)
        if sc is None or ctx is None:
            continue
        name_line = line_of(root, (*prefix, "name")) or line
        if sc.name in names:
            problems.append(PackProblem(where, name_line, loc_str((*prefix, "name")),
                                        f"scenario {sc.name!r} is already named at line {names[sc.name]}"))
        names.setdefault(sc.name, line)
        sc._file, sc._line, sc._context = where, line, ctx
        if file_profile is not None or sc.profile is not None:
            sc._profile = _merge(file_profile, sc.profile)
        _lines_of_expect(sc.expect, root["scenarios"][i]["expect"])
        scenarios.append(sc)
    if problems or head is None:
        raise ScenarioError(sorted(problems, key=lambda p: p.line or 0))
    book = ScenarioBook(description=head.description, business=head.business, profile=head.profile,
                        requires_plugins=head.requires_plugins, scenarios=scenarios)
    book._file = where
    return book


def _has(data: Mapping[str, Any], parts: Sequence[str]) -> bool:
    node: Any = data
    for p in parts:
        if not isinstance(node, Mapping) or p not in node:
            return False
        node = node[p]
    return True


def load_books(paths: Iterable[str | Path]) -> list[ScenarioBook]:
    """Every scenario file under ``paths``, all validated; every problem of every file at once."""
    books, problems = [], []
    for f in scenario_files(paths):
        try:
            books.append(load_book(f))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return books


# -- checking one answer ---------------------------------------------------------------


@dataclass
class Failure:
    line: int
    message: str


def _fmt_cost(c: float | None) -> str:
    return "unknown" if c is None else f"{c:.2f}"


def _alternatives(ref: str) -> list[str]:
    return ref.split("|")


def _where(gid: str, result: RecommendationResult) -> str:
    """Where one gesture ended up, for a failure message."""
    for i, r in enumerate(result.recommendations, 1):
        if r.gesture_id == gid:
            return f"{gid} is listed (#{i}, {r.tier}, cost {_fmt_cost(r.cost)})"
    for w in result.needs_approval:
        if w.gesture_id == gid:
            return f"{gid} needs approval ({w.detail})"
    for w in result.withheld:
        if w.gesture_id == gid:
            return f"{gid} is withheld: {w.reason} ({w.detail})"
    return f"{gid} did not match"


def _where_any(ref: str, result: RecommendationResult) -> str:
    return "; ".join(_where(g, result) for g in _alternatives(ref))


def _listed_text(result: RecommendationResult) -> str:
    ids = result.gesture_ids()
    return f"listed [{', '.join(ids)}]" if ids else "nothing listed"


def _offered(gid: str, result: RecommendationResult) -> bool:
    return gid in result.gesture_ids() or any(
        w.gesture_id == gid and w.reason in OFFERED_REASONS for w in result.withheld)


def check(expect: Expect, result: RecommendationResult, default_line: int = 0) -> list[Failure]:
    """Each expectation ``result`` does not meet, with its line and what came back."""
    fails: list[Failure] = []

    def fail(key: str, message: str, item: Any = None) -> None:
        fails.append(Failure(expect.line(key, item) or default_line, message))

    listed = result.gesture_ids()
    for ref in expect.listed:
        if not any(g in listed for g in _alternatives(ref)):
            fail("listed", f"expected {_or(ref)} listed, got {_listed_text(result)} ({_where_any(ref, result)})", ref)
    for ref in expect.not_listed:
        hit = [g for g in _alternatives(ref) if g in listed]
        if hit:
            fail("not_listed", f"expected {_or(ref)} not listed, got {_where(hit[0], result)}", ref)
    for ref in expect.offered:
        if not any(_offered(g, result) for g in _alternatives(ref)):
            fail("offered", f"expected {_or(ref)} offered (listed, or held back only by the extras draw or the "
                            f"listing cap), got {_where_any(ref, result)}", ref)
    for ref in expect.not_offered:
        hit = [g for g in _alternatives(ref) if _offered(g, result)]
        if hit:
            fail("not_offered", f"expected {_or(ref)} not offered, got {_where(hit[0], result)}", ref)
    tiers = {r.tier for r in result.recommendations}
    for tier in expect.tiers:
        if tier not in tiers:
            fail("tiers", f"expected a {tier} gesture listed, got {_tiers_text(result)}", tier)
    for tier in expect.no_tiers:
        if tier in tiers:
            ids = [r.gesture_id for r in result.recommendations if r.tier == tier]
            fail("no_tiers", f"expected no {tier} gesture listed, got {', '.join(ids)}", tier)
    approvals = {w.gesture_id: w for w in result.needs_approval}
    for ref in expect.needs_approval:
        got = next((approvals[g] for g in _alternatives(ref) if g in approvals), None)
        if got is None:
            names = ", ".join(approvals) or "none"
            fail("needs_approval", f"expected {_or(ref)} to need approval, got needs_approval [{names}] "
                                   f"({_where_any(ref, result)})", ref)
        elif not (got.script or "").strip() or not (got.agent_reason or "").strip():
            fail("needs_approval", f"expected {got.gesture_id} to need approval with its script and agent reason, "
                                   f"got script {got.script!r} and agent reason {got.agent_reason!r}", ref)
    held = {w.gesture_id: w for w in [*result.needs_approval, *result.withheld]}
    for gid, reason in expect.withheld.items():
        w = held.get(gid)
        if w is None or w.reason != reason:
            fail("withheld", f"expected {gid} withheld ({reason}), got {_where(gid, result)}", gid)
    costs = [(r.gesture_id, r.cost) for r in result.recommendations]
    total = sum(c or 0.0 for _, c in costs)
    unknown = [g for g, c in costs if c is None]
    breakdown = ", ".join(f"{g} {_fmt_cost(c)}" for g, c in costs) or "nothing listed"
    if expect.max_cost is not None:
        if unknown:
            fail("max_cost", f"expected a listed total cost of at most {expect.max_cost:g}, got an unknown cost "
                             f"({breakdown})")
        elif total > expect.max_cost + 1e-9:
            fail("max_cost", f"expected a listed total cost of at most {expect.max_cost:g}, got {total:.2f} "
                             f"({breakdown})")
    if expect.min_cost is not None and total < expect.min_cost - 1e-9:
        fail("min_cost", f"expected a listed total cost of at least {expect.min_cost:g}, got {total:.2f} ({breakdown})")
    if expect.max_listed is not None and len(listed) > expect.max_listed:
        fail("max_listed", f"expected at most {expect.max_listed} listed, got {len(listed)}: {', '.join(listed)}")
    a = result.assessment
    if "family" in expect.model_fields_set:
        got_family = a.family if a else None
        wanted = expect.family.split("|") if expect.family is not None else [None]
        if got_family not in wanted:
            fail("family", f"expected family {_or(expect.family) if expect.family else 'null (an unknown issue)'}, "
                           f"got {got_family or 'null (an unknown issue)'}")
    sev = a.severity if a else 0
    sev_text = f"{sev} ({SEVERITY_BANDS[sev]}; {', '.join(a.reasons) if a and a.reasons else 'no signal'})"
    if expect.severity is not None and sev != expect.severity:
        fail("severity", f"expected severity {expect.severity} ({SEVERITY_BANDS[expect.severity]}), got {sev_text}")
    if expect.min_severity is not None and sev < expect.min_severity:
        fail("min_severity", f"expected severity at least {expect.min_severity} "
                             f"({SEVERITY_BANDS[expect.min_severity]}), got {sev_text}")
    if expect.max_severity is not None and sev > expect.max_severity:
        fail("max_severity", f"expected severity at most {expect.max_severity} "
                             f"({SEVERITY_BANDS[expect.max_severity]}), got {sev_text}")
    notes = [n.lower() for n in result.notes]
    for text in expect.notes_contain:
        if not any(text.lower() in n for n in notes):
            fail("notes_contain", f"expected a note containing {text!r}, got {_quoted(result.notes) or 'no notes'}",
                 text)
    hints = [nm.hint for nm in getattr(result, "near_misses", [])]
    for text in expect.near_miss_hints:
        if not any(text.lower() in h.lower() for h in hints):
            fail("near_miss_hints", f"expected a near-miss hint containing {text!r}, got "
                                    f"{_quoted(hints) or 'no near misses'}", text)
    for f in expect.missing_inputs:
        if f not in result.missing_inputs:
            fail("missing_inputs", f"expected {f} in missing_inputs, got [{', '.join(result.missing_inputs)}]", f)
    scripts = [(r.gesture_id, r.script) for r in result.recommendations] + \
              [(w.gesture_id, w.script or "") for w in result.needs_approval]
    for text in expect.scripts_not_contain:
        said = next(((g, s) for g, s in scripts if text.lower() in s.lower()), None)
        if said:
            fail("scripts_not_contain", f"expected no script to contain {text!r}, got {said[0]}: {said[1]!r}", text)
    if fails and result.warnings:
        fails.append(Failure(default_line, "plugin warnings: " + "; ".join(
            f"{w.plugin} ({w.hook}): {w.message}" for w in result.warnings)))
    return fails


def _or(ref: str) -> str:
    alts = _alternatives(ref)
    return alts[0] if len(alts) == 1 else "one of " + " / ".join(alts)


def _quoted(items: Sequence[str]) -> str:
    return "; ".join(repr(i) for i in items)


def _tiers_text(result: RecommendationResult) -> str:
    if not result.recommendations:
        return "nothing listed"
    return ", ".join(f"{r.gesture_id} ({r.tier})" for r in result.recommendations)


# -- running ---------------------------------------------------------------------------

Status = Literal["passed", "failed", "known_issue", "fixed", "skipped"]


@dataclass
class Outcome:
    file: str
    line: int
    name: str
    status: Status
    failures: list[Failure] = field(default_factory=list)
    known_issue: str | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "name": self.name, "status": self.status,
                "known_issue": self.known_issue, "note": self.note or None,
                "failures": [{"line": f.line, "message": f.message} for f in self.failures]}


@dataclass
class Report:
    outcomes: list[Outcome]
    strict: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> int:
        return self.count("failed") + (self.count("known_issue") + self.count("fixed") if self.strict else 0)

    @property
    def passed(self) -> int:
        return self.count("passed") + (0 if self.strict else self.count("fixed"))

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        parts = [f"{self.passed} passed", f"{self.failed} failed"]
        if not self.strict:
            if self.count("known_issue"):
                parts.append(f"{self.count('known_issue')} known issue(s) still failing")
            if self.count("fixed"):
                parts.append(f"{self.count('fixed')} known issue(s) now passing")
        if self.count("skipped"):
            parts.append(f"{self.count('skipped')} skipped")
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """One line per failed expectation (``file:line: scenario: message``), then the summary."""
        out: list[str] = []
        skipped_files: dict[str, str] = {}
        for o in self.outcomes:
            if o.status == "skipped":
                skipped_files.setdefault(o.file, o.note)
                continue
            if o.status == "failed" or (o.status == "known_issue" and self.strict):
                out += [f"{o.file}:{f.line}: {o.name}: {f.message}" for f in o.failures]
            elif o.status == "known_issue":
                out += [f"{o.file}:{f.line}: {o.name}: [known issue] {f.message}" for f in o.failures]
            elif o.status == "fixed":
                out.append(f"{o.file}:{o.line}: {o.name}: passes now although marked known_issue; remove the mark")
        out += [f"{f}: skipped: {note}" for f, note in skipped_files.items()]
        out.append(self.summary())
        return out

    def to_json(self) -> str:
        return json.dumps({"passed": self.passed, "failed": self.failed, "known_issues": self.count("known_issue"),
                           "fixed": self.count("fixed"), "skipped": self.count("skipped"), "strict": self.strict,
                           "scenarios": [o.as_dict() for o in self.outcomes]}, indent=2)


_MISSING = object()


def _plan(scenarios: Sequence[Scenario]) -> list[tuple[dict[str, dict[str, Any] | None], list[Scenario]]]:
    """Scenarios grouped so each group can share one Recommender: within a group every
    business id has one profile (or none), and a profile for ``default`` (which layers under
    every business) is never shared with another business."""
    slots: list[tuple[dict[str, Any], dict[str, dict[str, Any] | None], list[Scenario]]] = []
    for sc in scenarios:
        bid, prof = sc.business_id, sc.run_profile
        key = json.dumps(prof, sort_keys=True) if prof is not None else None
        for keys, profiles, members in slots:
            have = keys.get(bid, _MISSING)
            if have is not _MISSING and have != key:
                continue
            if bid != "default" and keys.get("default") is not None:
                continue
            if bid == "default" and key is not None and any(b != "default" for b in keys):
                continue
            keys[bid] = key
            profiles[bid] = prof
            members.append(sc)
            break
        else:
            slots.append(({bid: key}, {bid: prof}, [sc]))
    return [(profiles, members) for _, profiles, members in slots]


def run_books(books: Sequence[ScenarioBook], *, rules: Sequence[str | Path] | None = None, autoload: bool = True,
              strict: bool = False, factory: Callable[..., Any] | None = None) -> Report:
    """Run every scenario; one Recommender per group of scenarios whose profiles can share it.

    ``factory(profiles=...)`` builds a Recommender (default: ``Recommender(rules,
    autoload=autoload, profiles=...)``); a rule pack error propagates (a usage error).
    """
    from .core import Recommender

    def build(profiles: dict[str, Any]) -> Any:
        if factory is not None:
            return factory(profiles=profiles)
        return Recommender(list(rules) if rules is not None else None, autoload=autoload, profiles=profiles)

    results: dict[int, Outcome] = {}
    runnable: list[Scenario] = []
    probe: Any = None
    for book in books:
        if book.requires_plugins:
            probe = probe or build({})
            loaded = {info["name"] for info in probe.plugin_info()}
            absent = [p for p in book.requires_plugins if p not in loaded]
            if absent:
                note = f"needs plugin(s) {', '.join(absent)}, not loaded"
                for sc in book.scenarios:
                    results[id(sc)] = Outcome(sc.file, sc.line, sc.name, "skipped", known_issue=sc.known_issue,
                                              note=note)
                continue
        runnable.extend(book.scenarios)
    cache: dict[int, set[str]] = {}
    for profiles, members in _plan(runnable):
        configured = {b: p for b, p in profiles.items() if p is not None}
        rec = probe if not configured and probe is not None else build(configured)
        for sc in members:
            results[id(sc)] = _run_one(rec, sc, cache)
    ordered = [results[id(sc)] for book in books for sc in book.scenarios]
    return Report(ordered, strict=strict)


def _all_gestures(rec: Any, cache: dict[int, set[str]]) -> set[str]:
    """Every gesture some business of this Recommender could have: the default business's
    and those of each vertical a loaded plugin declares it serves."""
    known = cache.get(id(rec))
    if known is None:
        known = set(rec.rulebook.gestures)
        infos = getattr(getattr(rec, "host", None), "infos", {}) or {}
        for vertical in sorted({v for i in infos.values() for v in (getattr(i, "verticals", None) or [])}):
            known |= set(rec.rulebook_for({"vertical": vertical}).gestures)
        cache[id(rec)] = known
    return known


def _unknown_gestures(rec: Any, sc: Scenario, cache: dict[int, set[str]]) -> list[Failure]:
    """Expectations naming a gesture that cannot be meant: one the business's rules lack
    (listed, offered, needs_approval, withheld: it could never pass), or one no business of
    this run has (not_listed, not_offered: a typo would otherwise pass silently)."""
    try:
        mine = set(rec.rulebook_for(sc.run_context.get("business") or {}).gestures)
        anywhere = mine | _all_gestures(rec, cache)
    except Exception:  # noqa: BLE001 - the run itself reports a bad business
        return []
    e = sc.expect
    out = []
    for key in ("listed", "not_listed", "offered", "not_offered", "needs_approval", "withheld"):
        known = anywhere if key.startswith("not_") else mine
        for ref in getattr(e, key):
            for gid in _alternatives(ref):
                if gid not in known:
                    close = difflib.get_close_matches(gid, known, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    where = "any business's rules" if key.startswith("not_") else "this business's rules"
                    out.append(Failure(e.line(key, ref) or sc.line, f"{key}: no gesture {gid!r} in {where}{hint}"))
    return out


def _run_one(rec: Any, sc: Scenario, cache: dict[int, set[str]]) -> Outcome:
    try:
        fails = _unknown_gestures(rec, sc, cache)
        call = rec.explain if sc.expect.near_miss_hints else rec.recommend
        result = call(sc.run_context)
        fails += check(sc.expect, result, sc.line)
    except RecommenderError as exc:
        fails = [Failure(sc.line, f"expected an answer, got an error: {exc}")]
    except Exception as exc:  # noqa: BLE001 - a scenario run never ends the book with a traceback
        fails = [Failure(sc.line, f"expected an answer, got {type(exc).__name__}: {exc}")]
    fails.sort(key=lambda f: f.line)
    if sc.known_issue is not None:
        status: Status = "known_issue" if fails else "fixed"
    else:
        status = "failed" if fails else "passed"
    return Outcome(sc.file, sc.line, sc.name, status, fails, sc.known_issue)


def run_paths(paths: Iterable[str | Path], *, rules: Sequence[str | Path] | None = None, autoload: bool = True,
              strict: bool = False) -> Report:
    """Load every scenario file under ``paths`` and run it (what ``recommender rules test`` does).

    Raises :class:`ScenarioError` for an invalid file and ``RulePackError`` for invalid packs.
    """
    return run_books(load_books(paths), rules=rules, autoload=autoload, strict=strict)

