"""The endpoints behind the agent console: the issue vocabulary, the business profile, the rules
browser, approvals and panel tokens.

* ``GET /v1/issues``, ``GET /v1/business``, ``GET /v1/rules``: what the console's form, its
  answers and its rules browser show, for the caller's business (and a vertical).
* ``POST /v1/approvals`` (scope ``recommend``): ask for approval of a gesture a decision listed
  under ``needs_approval``; ``GET /v1/approvals`` and ``POST /v1/approvals/{id}/decision``
  (scope ``approve``): the supervisor's list and answer; ``GET /v1/approvals/{id}``: the
  request's state, for the agent waiting on it.
* ``POST /v1/panel-tokens``: a help-desk tool's backend trades its API key for a short-lived,
  scoped token for the side panel (see :mod:`.auth`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from ..context import Business
from ..memory.approvals import ApprovalRecord
from ..packs import CostFormula
from .auth import DEFAULT_TOKEN_SECONDS, MAX_TOKEN_SECONDS, TOKEN_SCOPES, AuthError, NoAuth, Principal
from .errors import ERROR_RESPONSES, ErrorBody, FieldError, ServiceError
from .routes import GestureId, _json, _need_store, _state, _store_call, _tenant, authorize, json_body, require

__all__ = ["router"]

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")]
VerticalQuery = Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$",
                                            description="The business's vertical (selects its plugins' rules "
                                                        "and issue codes)")]
ApprovalId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9-]+$")]
Note = Annotated[str, StringConstraints(max_length=2000)]

_STORE_404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown (or another tenant's) id, or no store configured"},
              503: {"model": ErrorBody, "description": "The store is unavailable"}}


def _business(principal: Principal, vertical: str | None) -> Business:
    return Business(id=_tenant(principal, None), vertical=vertical)


def who(principal: Principal) -> str:
    """How a principal is named in approvals: the key's (or the panel agent's) name, else its id."""
    return (principal.name or principal.key_id)[:200]


# -- the vocabulary and the profile ------------------------------------------------------


class IssueOut(BaseModel):
    code: str
    family: str
    negative: bool
    meaning: str = ""
    aliases: list[str] = Field(default_factory=list)
    source: str = ""


class IssuesOut(BaseModel):
    business: str
    vertical: str | None = None
    issues: list[IssueOut]


@router.get("/issues", response_model=IssuesOut, tags=["rules"], summary="The issue vocabulary in force")
async def get_issues(request: Request, principal: Principal = Depends(require(None)),
                     vertical: VerticalQuery = None) -> Response:
    """Every issue code (and its aliases) the caller's business knows, with its family: what
    ``interaction.issue`` may say (an unknown code still works, with a note)."""
    from ..issues import FAMILIES

    svc = _state(request)
    business = _business(principal, vertical)
    tenant = await run_in_threadpool(svc.recommender._tenant, business)
    issues = []
    for row in tenant.vocabulary.as_table():
        family = FAMILIES.get(row["family"])
        issues.append(IssueOut(code=row["code"], family=row["family"], negative=bool(family and family.negative),
                               meaning=family.meaning if family else "", aliases=row["aliases"],
                               source=str(row["source"])))
    return _json(IssuesOut(business=business.id, vertical=vertical, issues=issues), svc.version())


class MoneyLimitsOut(BaseModel):
    synthetic: float
    genuine: float
    super: float


class BusinessOut(BaseModel):
    """The business profile as the console shows it (never the extras draw's key)."""

    business: str
    vertical: str | None = None
    currency: str
    extras_rate: float = Field(description="The share of interactions with an extra on offer that get one")
    money_limits: MoneyLimitsOut
    listing: dict[str, int]
    loyal_tenure_years: float
    loyal_visits: int
    high_value: float
    major_amount: float
    long_wait_minutes: float


def _profile(svc: Any, business: Business) -> Any:
    return svc.recommender.profile_for(business)[0]


@router.get("/business", response_model=BusinessOut, tags=["rules"], summary="The business profile in force")
async def get_business(request: Request, principal: Principal = Depends(require(None)),
                       vertical: VerticalQuery = None) -> Response:
    """Currency, money limits per staff level, the extras rate and the loyalty and value scales
    of the caller's business (docs/advice.md)."""
    svc = _state(request)
    business = _business(principal, vertical)
    p = await run_in_threadpool(_profile, svc, business)
    out = BusinessOut(business=business.id, vertical=vertical, currency=p.currency, extras_rate=p.extras_rate,
                      money_limits=MoneyLimitsOut(**p.money_limits.model_dump()), listing=p.listing.model_dump(),
                      loyal_tenure_years=p.loyal_tenure_years, loyal_visits=p.loyal_visits, high_value=p.high_value,
                      major_amount=p.major_amount, long_wait_minutes=p.long_wait_minutes)
    return _json(out, svc.version())


# -- the rules browser ---------------------------------------------------------------------


class RulePackOut(BaseModel):
    name: str
    version: str
    description: str = ""
    source: str
    plugin: str | None = None
    gestures: int
    rules: int


class RuleGestureOut(BaseModel):
    id: str
    title: str
    category: str
    tier: str
    cost: str = Field(description="What it costs, in words: a number, the field it is read from, or a formula")
    authority: str
    script: str
    pack: str
    plugin: str | None = None


class RuleOut(BaseModel):
    id: str
    pack: str
    plugin: str | None = None
    priority: int
    because: str
    description: str | None = None
    gestures: list[str]
    when: Any = Field(description=(
        "The conditions as the pack writes them: a test ('customer.tenure_years ge 2'), a list (all of them), "
        "or {all: [...]}, {any: [...]}, {not: ...}"))


class RulesOut(BaseModel):
    business: str
    vertical: str | None = None
    ruleset_version: str
    packs: list[RulePackOut]
    gestures: list[RuleGestureOut]
    rules: list[RuleOut]


def _plugin(label: str) -> str | None:
    return label.split(":", 1)[1] if label.startswith("plugin:") else None


def _cost_text(cost: float | str | CostFormula) -> str:
    if isinstance(cost, CostFormula):
        text = f"{cost.each:g} per unit of {cost.of}, {cost.min:g} to {cost.max:g}"
        return text + (f", at most {cost.cap}" if cost.cap else "")
    if isinstance(cost, str):
        return f"read from {cost}"
    return f"{float(cost):g}"


@router.get("/rules", response_model=RulesOut, tags=["rules"], summary="Packs, gestures and rules in force")
async def get_rules(request: Request, principal: Principal = Depends(require(None)),
                    vertical: VerticalQuery = None) -> Response:
    """Read-only: every pack, gesture and rule the caller's business (and vertical) runs, each
    rule with its conditions and its ``because``."""
    svc = _state(request)
    business = _business(principal, vertical)
    book = await run_in_threadpool(svc.recommender.rulebook_for, business)
    pack_of: dict[str, str] = {}
    packs = []
    for p in book.packs:
        source = p.source if p.source.startswith(("plugin:", "core")) else p.label
        packs.append(RulePackOut(name=p.name, version=p.version, description=p.description, source=p.label,
                                 plugin=_plugin(source), gestures=len(p.gestures), rules=len(p.rules)))
        for g in p.gestures:
            pack_of[g.id] = p.name
    gestures = [RuleGestureOut(id=g.id, title=g.title, category=g.category, tier=g.tier, cost=_cost_text(g.cost),
                               authority=g.authority, script=g.script, pack=pack_of.get(g.id, ""),
                               plugin=_plugin(g.source or g.label)) for g in book.gestures.values()]
    rules = []
    for pack in book.packs:
        for r in pack.rules:
            rules.append(RuleOut(id=r.id, pack=pack.name, plugin=_plugin(r.source or pack.source), priority=r.priority,
                                 because=r.because, description=r.description, gestures=r.gesture_ids,
                                 when=r.when))
    out = RulesOut(business=business.id, vertical=vertical, ruleset_version=book.version, packs=packs,
                   gestures=gestures, rules=rules)
    return _json(out, book.version)


# -- approvals -------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ApprovalIn(_In):
    decision_id: Annotated[str, StringConstraints(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9_.:-]+$")]
    gesture_id: GestureId
    note: Note | None = Field(default=None, description="For the approver: anything the agent wants to add")


class ApprovalDecisionIn(_In):
    decision: Literal["approved", "declined"]
    note: Note | None = Field(default=None, description="Why, for the agent and the decision log")


class ApprovalsOut(BaseModel):
    business: str
    status: str | None = None
    approvals: list[ApprovalRecord]


def _approvals(svc: Any, what: str) -> Any:
    return _need_store(svc, what)


def _held_item(svc: Any, record: Any, gesture_id: str) -> dict[str, Any]:
    """What the decision's answer said about ``gesture_id``: re-run on the logged context (the
    same rules give the same script), else what the log kept."""
    logged: dict[str, Any] = next((h for h in record.held if h.get("gesture_id") == gesture_id), {})
    item = {"title": logged.get("title"), "cost": logged.get("cost"), "detail": logged.get("detail") or "",
            "script": "", "agent_reason": ""}
    try:
        result = svc.recommender.recommend(record.context)
    except Exception:  # noqa: BLE001 - a context the rules no longer take: the log's words stand
        return item
    for held in result.needs_approval:
        if held.gesture_id == gesture_id:
            item.update(title=held.title, detail=held.detail or item["detail"], script=held.script or "",
                        agent_reason=held.agent_reason or "")
            break
    return item


@router.post("/approvals", response_model=ApprovalRecord, status_code=201, tags=["approvals"],
             summary="Ask for approval of a gesture that needs it",
             responses={200: {"model": ApprovalRecord, "description": "Asked before: the request already made"},
                        **_STORE_404})
async def post_approval(request: Request, body: ApprovalIn, principal: Principal = Depends(require("recommend")),
                        _json_body: None = Depends(json_body)) -> Response:
    """The approver will read what would be said (the script) and why (the agent reason and
    why it needs approval), re-rendered from the logged decision. 422 (``gesture_id``) for a
    gesture the decision did not list under ``needs_approval``."""
    svc = _state(request)
    approvals = _approvals(svc, "approvals")
    tenant = _tenant(principal, None)
    fields = {"decision_id": "decision_id", "gesture_id": "gesture_id"}
    record = await _store_call(svc.store.get_decision, body.decision_id, tenant, _fields=fields)
    item = await run_in_threadpool(_held_item, svc, record, body.gesture_id)
    approval, created = await _store_call(
        approvals.request_approval, tenant, body.decision_id, body.gesture_id, requested_by=who(principal),
        script=item["script"], agent_reason=item["agent_reason"], detail=item["detail"], title=item["title"],
        note=body.note, _fields=fields)
    return _json(approval, svc.version(), 201 if created else 200)


@router.get("/approvals", response_model=ApprovalsOut, tags=["approvals"], summary="Approval requests (supervisors)",
            responses=_STORE_404)
async def list_approvals(request: Request, principal: Principal = Depends(require("approve")),
                         status: Annotated[Literal["pending", "approved", "declined", "all"],
                                           Query(description="Which requests")] = "pending",
                         limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    """Pending requests oldest first (the queue); decided ones newest first."""
    svc = _state(request)
    approvals = _approvals(svc, "approvals")
    tenant = _tenant(principal, None)
    rows = await _store_call(approvals.list_approvals, tenant, None if status == "all" else status, limit)
    return _json(ApprovalsOut(business=tenant, status=status, approvals=rows), svc.version())


@router.get("/approvals/{approval_id}", response_model=ApprovalRecord, tags=["approvals"],
            summary="One approval request (the agent waiting on it, or the approver)", responses=_STORE_404)
async def get_approval(request: Request, approval_id: ApprovalId) -> Response:
    principal = await authorize(request, None)
    if not (principal.can("recommend") or principal.can("approve")):
        raise AuthError(403, "forbidden_scope", "this API key lacks the 'recommend' or 'approve' scope")
    svc = _state(request)
    approvals = _approvals(svc, "approvals")
    record = await _store_call(approvals.get_approval, _tenant(principal, None), approval_id,
                               _fields={"approval_id": "path.approval_id"})
    return _json(record, svc.version())


@router.post("/approvals/{approval_id}/decision", response_model=ApprovalRecord, tags=["approvals"],
             summary="Approve or decline a request (scope approve)",
             responses={409: {"model": ErrorBody, "description": "Already decided otherwise"},
                        403: {"model": ErrorBody, "description": "The key lacks the scope, or asked for this "
                                                                 "approval itself (someone else approves)"},
                        **_STORE_404})
async def decide_approval(request: Request, body: ApprovalDecisionIn, approval_id: ApprovalId,
                          principal: Principal = Depends(require("approve")),
                          _json_body: None = Depends(json_body)) -> Response:
    """Records who decided, when and why, on the request and in the decision log; outcomes
    recorded for the gesture afterwards carry ``approved_by``. Nobody approves their own
    request (403 ``forbidden_self_approval``)."""
    svc = _state(request)
    approvals = _approvals(svc, "approvals")
    tenant = _tenant(principal, None)
    fields = {"approval_id": "path.approval_id", "decision": "decision", "note": "note"}
    current = await _store_call(approvals.get_approval, tenant, approval_id, _fields=fields)
    if current.requested_by == who(principal) and not isinstance(svc.verifier, NoAuth):
        raise ServiceError(403, "forbidden_self_approval",
                           "you asked for this approval yourself: someone else with the 'approve' scope decides it")
    record, _ = await _store_call(approvals.decide_approval, tenant, approval_id, body.decision,
                                  decided_by=who(principal),
                                  note=body.note, _fields=fields)
    return _json(record, svc.version())


# -- panel tokens ------------------------------------------------------------------------------


TokenScope = Literal["recommend", "outcome", "approve"]


def _default_scopes() -> list[TokenScope]:
    return ["recommend", "outcome"]


class PanelTokenIn(_In):
    scopes: list[TokenScope] = Field(
        default_factory=_default_scopes, min_length=1, max_length=3,
        description="What the panel may do: at most the minting key's scopes, never admin")
    seconds: Annotated[int, Field(ge=60, le=MAX_TOKEN_SECONDS)] = Field(
        default=DEFAULT_TOKEN_SECONDS, description="How long the token lives")
    agent: Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = Field(
        default=None, description="Who uses the panel (shown in approvals): the help-desk agent's name or e-mail")
    tenant: Slug | None = Field(default=None, description="Only without authentication (--no-auth): the tenant")


class PanelTokenOut(BaseModel):
    token: str = Field(description="Send as Authorization: Bearer <token>; put it in the panel URL's fragment")
    token_type: Literal["bearer"] = "bearer"
    tenant: str
    scopes: list[str]
    expires_at: datetime
    expires_in: int
    panel_url: str = Field(description="The side panel's URL template (the token goes after #token=)")


@router.post("/panel-tokens", response_model=PanelTokenOut, status_code=201, tags=["console"],
             summary="Mint a short-lived token for the side panel (the help-desk tool's backend)")
async def post_panel_token(request: Request, body: PanelTokenIn,
                           principal: Principal = Depends(require("recommend")),
                           _json_body: None = Depends(json_body)) -> Response:
    """A help-desk tool's backend calls this with its API key and hands the token to the
    agent's browser: the raw key never reaches a browser or a URL. The token carries the
    key's tenant, the scopes asked for (each one the key holds; never admin) and an expiry
    (60 to 3,600 s). 403 ``forbidden_scope`` for a scope the key lacks."""
    svc = _state(request)
    if principal.key_id.startswith("panel:"):  # else a token could renew itself for ever
        raise AuthError(403, "forbidden_scope", "a panel token cannot mint panel tokens: the help-desk tool's "
                                                "backend mints them with its API key")
    scopes: list[str] = list(dict.fromkeys(body.scopes))
    lacking = [s for s in scopes if not principal.can(s) or s not in TOKEN_SCOPES]
    if lacking:
        raise AuthError(403, "forbidden_scope", f"this API key lacks the {lacking[0]!r} scope a token would carry")
    if body.tenant is not None and principal.tenant is not None and body.tenant != principal.tenant:
        raise ServiceError(403, "forbidden_tenant", f"this API key belongs to tenant {principal.tenant!r}",
                           errors=[FieldError(field="tenant", message="another tenant's")])
    tenant = principal.tenant or body.tenant or "default"
    agent = (body.agent or "").strip() or f"panel via {principal.name or principal.key_id}"
    token, expires = svc.panel_tokens.mint(tenant=tenant, scopes=scopes, seconds=body.seconds, agent=agent,
                                           key_id=principal.key_id[:40])
    now = datetime.now(timezone.utc)
    out = PanelTokenOut(token=token, tenant=tenant, scopes=scopes,
                        expires_at=datetime.fromtimestamp(expires, timezone.utc),
                        expires_in=max(0, expires - int(now.timestamp())),
                        panel_url="/console/panel?customer={customer}&issue={issue}&channel={channel}#token={token}")
    return _json(out, svc.version(), 201)
