"""The HTTP endpoints: ``/v1/...`` (authenticated), ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.concurrency import run_in_threadpool

from ..context import MAX_CONTEXT_BYTES, MAX_NUMBER, MAX_TEXT_CHARS, Business, Context, without_bom
from ..errors import RecommenderError
from ..memory.records import CustomerView, OutcomeRecord
from ..outcomes import outcome_key
from ..packs import CostFormula
from ..profile import Profile
from ..results import Explanation, RecommendationResult
from .auth import AuthError, NoAuth, Principal, extract_key
from .errors import (
    ERROR_RESPONSES,
    ErrorBody,
    FieldError,
    ServiceError,
    is_json,
    recommender_error_response,
    store_error,
    unsupported_media,
    validation_error,
)
from .metrics import CONTENT_TYPE_LATEST

__all__ = ["router", "root_router"]

log = logging.getLogger("recommender.service")

GestureId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,79}$")]

#: The security schemes of every /v1 operation (added to the OpenAPI document by the app).
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "The API key as a bearer token"},
}
SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]


def _state(request: Request) -> Any:
    return request.app.state.service


# -- auth ----------------------------------------------------------------------


async def _authenticate(request: Request) -> Principal:
    svc = _state(request)
    verifier = svc.verifier
    key = extract_key(request.headers)
    if isinstance(verifier, NoAuth):
        return verifier.verify(key)
    if key is None:
        raise AuthError(401, "unauthorized", "missing API key: send X-API-Key or Authorization: Bearer")
    if len(key) > 512:
        raise AuthError(401, "unauthorized", "unknown API key")
    if verifier.blocking:
        cached = getattr(verifier, "cached", None)
        principal = cached(key) if cached is not None else None
        if principal is None:
            principal = await run_in_threadpool(verifier.verify, key)
    else:
        principal = verifier.verify(key)
    if principal is None:
        raise AuthError(401, "unauthorized", "unknown or revoked API key")
    return principal


async def authorize(request: Request, scope: str | None) -> Principal:
    principal = await _authenticate(request)
    if scope is not None and not principal.can(scope):
        raise AuthError(403, "forbidden_scope", f"this API key lacks the {scope!r} scope")
    return principal


def require(scope: str | None) -> Callable[..., Any]:
    """A dependency: the caller's :class:`Principal`, which must hold ``scope`` (None: any)."""

    async def dependency(request: Request) -> Principal:
        return await authorize(request, scope)

    dependency.__name__ = f"require_{scope or 'key'}"
    return dependency


def _bind_tenant(ctx: Context, principal: Principal) -> Context:
    """The context with business.id set to the key's tenant (403 if it names another)."""
    given = "business" in ctx.model_fields_set and "id" in ctx.business.model_fields_set
    tenant = principal.tenant_for(ctx.business.id if given else None)
    if tenant is None or tenant == ctx.business.id:
        return ctx
    return ctx.model_copy(update={"business": ctx.business.model_copy(update={"id": tenant})})


def _tenant(principal: Principal, requested: str | None) -> str:
    return principal.tenant_for(requested) or "default"


def _json(model: BaseModel, version: str, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json",
                    headers={"X-Ruleset-Version": version})


_LEARNING_TENANT = Query(max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$",
                         description="The tenant; defaults to the key's (another tenant's is 403)")


def _need_store(svc: Any, what: str) -> Any:
    if svc.store is None:
        raise ServiceError(404, "no_store", f"{what}: no memory store is configured on this server "
                                            "(start it with --store-url / RECOMMENDER_STORE_URL)")
    return svc.store


async def _store_call(fn: Callable[..., Any], *args: Any, _fields: dict[str, str] | None = None,
                      **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` off the event loop; a store error becomes its HTTP error, the
    store's argument names renamed by ``_fields`` (``customer_id`` -> ``path.customer_id``)."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except RecommenderError as exc:
        mapped = store_error(exc, _fields)
        if mapped is not None:
            raise mapped from None
        raise


# -- models ----------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OutcomeIn(_In):
    gesture_id: GestureId
    outcome: Literal["offered", "accepted", "declined", "delivered"]
    note: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | None = None
    actual_cost: Annotated[float, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)] | None = None


class GestureOut(BaseModel):
    id: str
    title: str
    category: str
    tier: str
    cost: float | str | CostFormula = Field(description=(
        "A number, the context field the cost is read from, or a bounded formula of one"))
    authority: str
    script: str
    agent_note: str | None = None
    exclusive_group: str | None = None
    conflicts_with: list[str] = Field(default_factory=list)
    follow_up_days: int | None = None
    source: str = ""


class GesturesOut(BaseModel):
    ruleset_version: str
    business: str
    gestures: list[GestureOut]


class PackOut(BaseModel):
    name: str
    version: str
    description: str = ""
    source: str
    digest: str
    gestures: int
    rules: int


class RulePacksOut(BaseModel):
    ruleset_version: str
    business: str
    packs: list[PackOut]


class PluginOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: str | None = None
    source: str | None = None


class PluginsOut(BaseModel):
    ruleset_version: str
    plugins: list[PluginOut]


class ReloadOut(BaseModel):
    ruleset_version: str
    previous_version: str
    changed: bool
    workers_signalled: bool = Field(description="True when the reload was also sent to the other worker processes")


class HealthOut(BaseModel):
    status: Literal["ok"]
    ruleset_version: str


class ReadyCheck(BaseModel):
    ok: bool
    detail: str = ""


class ReadyOut(BaseModel):
    ready: bool
    ruleset_version: str
    checks: dict[str, ReadyCheck] | None = Field(default=None, description=(
        "Each check with its detail: only for an admin key (or in --no-auth mode)"))


# -- /v1 -------------------------------------------------------------------------

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
root_router = APIRouter()

# The two hot endpoints parse their input themselves (pydantic's JSON parser straight
# from the bytes, no per-request dependency resolution): their parameters and body are
# declared for the OpenAPI document here.
_DECIDE_PARAMETERS = [
    {"name": "budget", "in": "query", "required": False,
     "description": "Per-interaction budget (overrides interaction.budget)",
     "schema": {"type": "number", "minimum": 0, "maximum": MAX_NUMBER}},
    {"name": "max_extras", "in": "query", "required": False, "description": "Cap on 'exceed' extras",
     "schema": {"type": "integer", "minimum": 0, "maximum": 100}},
]
_DECIDE_OPENAPI = {
    "parameters": _DECIDE_PARAMETERS,
    "requestBody": {"required": True, "description": "The interaction context",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Context"}}}},
}


def _query_number(request: Request, name: str, kind: type, low: float, high: float) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
        if value != value or not (low <= value <= high):  # NaN or out of range
            raise ValueError
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ServiceError(422, "invalid_request", f"query.{name}: must be {what} from {low:g} to {high:g}",
                           errors=[FieldError(field=f"query.{name}", message=f"must be {what} from {low:g} to {high:g}")]) from None
    return value


def _require_json(request: Request) -> None:
    """A JSON-body endpoint takes only ``Content-Type: application/json`` (415 otherwise)."""
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        raise unsupported_media(content_type)


async def json_body(request: Request) -> None:
    """A dependency: :func:`_require_json` (async: no thread hand-off)."""
    _require_json(request)


async def _decide_input(request: Request) -> tuple[Principal, Context, float | None, int | None]:
    principal = await authorize(request, "recommend")
    _require_json(request)
    if request.scope.get("query_string"):
        budget = _query_number(request, "budget", float, 0, MAX_NUMBER)
        max_extras = _query_number(request, "max_extras", int, 0, 100)
    else:  # the usual case: nothing to parse
        budget = max_extras = None
    body = await request.body()
    if len(body) > MAX_CONTEXT_BYTES:  # the library's bound, whatever max_body_bytes allows
        raise ServiceError(413, "payload_too_large", f"a context is at most {MAX_CONTEXT_BYTES} bytes of JSON")
    try:
        context = Context.model_validate_json(without_bom(body))  # as the library and the CLI
    except ValidationError as exc:
        raise validation_error(exc) from None
    return principal, _bind_tenant(context, principal), budget, max_extras


@router.post("/recommendations", response_model=RecommendationResult, tags=["recommend"],
             summary="Rank the gestures worth making now", openapi_extra=_DECIDE_OPENAPI)
async def post_recommendation(request: Request) -> Response:
    """Context in, ranked gestures out. With a memory store the decision is logged and
    ``decision_id`` is set (cite it when recording outcomes)."""
    svc = _state(request)
    _, ctx, budget, max_extras = await _decide_input(request)
    result = await svc.decide(ctx, explain=False, budget=budget, max_extras=max_extras)
    svc.metrics.count_result(result)
    return _json(result, result.ruleset_version)


@router.post("/explain", response_model=Explanation, tags=["recommend"],
             summary="Recommend, with every matched rule and near miss (never logged)", openapi_extra=_DECIDE_OPENAPI)
async def post_explain(request: Request) -> Response:
    svc = _state(request)
    _, ctx, budget, max_extras = await _decide_input(request)
    result = await svc.decide(ctx, explain=True, budget=budget, max_extras=max_extras)
    return _json(result, result.ruleset_version)


@router.post("/decisions/{decision_id}/outcomes", response_model=OutcomeRecord, status_code=201, tags=["memory"],
             summary="Record what happened to a recommended gesture",
             responses={200: {"model": OutcomeRecord, "description": "Replay: this Idempotency-Key was already "
                                                                     "recorded with the same payload"},
                        404: {"model": ErrorBody, "description": "Unknown decision (or one of another tenant), "
                                                                 "a gesture the decision did not list, or no store"},
                        409: {"model": ErrorBody, "description": "Idempotency-Key reused with another payload, "
                                                                 "outcome already recorded, or a budget would be "
                                                                 "overspent (nothing recorded)"},
                        503: {"model": ErrorBody, "description": "The store is unavailable"}})
async def post_outcome(request: Request, body: OutcomeIn,
                       decision_id: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")],
                       idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                                     max_length=200, pattern=r"^[\x21-\x7e]+$")] = None,
                       principal: Principal = Depends(require("outcome")),
                       _json_body: None = Depends(json_body)) -> Response:
    """``delivered`` spends the tenant's budget. An outcome is recorded once: a retry with
    the same ``Idempotency-Key`` header replays it (200, 201 when new); without the header
    the key is what the outcome records (decision, gesture, outcome), so a retry replays too."""
    svc = _state(request)
    store = _need_store(svc, "outcomes")
    key = idempotency_key or outcome_key(decision_id, body.gesture_id, body.outcome)
    tenant = principal.tenant_for(None)
    fields = {"decision_id": "path.decision_id", "idempotency_key": "header.Idempotency-Key"}
    if tenant is None:  # no-auth mode: act for the tenant that owns the decision
        tenant = (await _store_call(store.get_decision, decision_id, _fields=fields)).tenant
    record = getattr(svc.recommender, "record_outcome", None)  # the core also tells outcome plugins
    if record is not None:
        result = await _store_call(record, store, decision_id, body.gesture_id, body.outcome, idempotency_key=key,
                                   note=body.note, actual_cost=body.actual_cost, tenant=tenant, _fields=fields)
    else:  # pragma: no cover
        result = await _store_call(store.record_outcome, decision_id, body.gesture_id, body.outcome,
                                   idempotency_key=key, note=body.note, actual_cost=body.actual_cost, tenant=tenant,
                                   _fields=fields)
    if not result.replayed:
        svc.metrics.outcomes.labels(body.outcome).inc()
    return _json(result, svc.version(), 200 if result.replayed else 201)


async def _book(svc: Any, tenant: str) -> Any:
    """The tenant's rulebook (built off the event loop the first time)."""
    return await run_in_threadpool(svc.recommender.rulebook_for, Business(id=tenant))


@router.get("/gestures", response_model=GesturesOut, tags=["rules"], summary="Gestures in force")
async def get_gestures(request: Request, principal: Principal = Depends(require(None))) -> Response:
    """The gestures of the caller's tenant (as selected for its business id)."""
    svc = _state(request)
    tenant = _tenant(principal, None)
    book = await _book(svc, tenant)
    gestures = [GestureOut(**g.model_dump(), source=g.label) for g in book.gestures.values()]
    return _json(GesturesOut(ruleset_version=book.version, business=tenant, gestures=gestures), book.version)


@router.get("/rulepacks", response_model=RulePacksOut, tags=["rules"], summary="Rule packs in force, with the version")
async def get_rulepacks(request: Request, principal: Principal = Depends(require(None))) -> Response:
    """The packs in force for the caller's tenant, and the ruleset version."""
    svc = _state(request)
    tenant = _tenant(principal, None)
    book = await _book(svc, tenant)
    packs = [PackOut(name=p.name, version=p.version, description=p.description, source=p.label, digest=p.digest,
                     gestures=len(p.gestures), rules=len(p.rules)) for p in book.packs]
    return _json(RulePacksOut(ruleset_version=book.version, business=tenant, packs=packs), book.version)


@router.get("/plugins", response_model=PluginsOut, tags=["rules"], summary="Plugins loaded")
async def get_plugins(request: Request, principal: Principal = Depends(require(None))) -> Response:
    svc = _state(request)
    info: list[Any] = getattr(svc.recommender, "plugin_info", lambda: [])()
    plugins = [PluginOut.model_validate(_jsonable(_without_server_path(i))) for i in info]
    return _json(PluginsOut(ruleset_version=svc.version(), plugins=plugins), svc.version())


def _without_server_path(info: dict[str, Any]) -> dict[str, Any]:
    """A drop-in plugin's ``path`` is a file on the server: only its name is shown."""
    path = info.get("path")
    return {**info, "path": path.rsplit("/", 1)[-1]} if isinstance(path, str) and "/" in path else info


@router.get("/customers/{customer_id}", response_model=CustomerView, tags=["memory"],
            summary="A customer's profile and history (needs a store)",
            responses={404: {"model": ErrorBody, "description": "Unknown customer, or no store configured"},
                       503: {"model": ErrorBody, "description": "The store is unavailable"}})
async def get_customer(request: Request,
                       customer_id: Annotated[str, Path(min_length=1, max_length=MAX_TEXT_CHARS)],
                       principal: Principal = Depends(require("recommend")),
                       tenant: Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$",
                                                           description="The tenant to read; defaults to the key's "
                                                                       "(another tenant's is 403)")] = None,
                       limit: Annotated[int, Query(ge=1, le=1000, description="Visits and gestures listed")] = 20) -> Response:
    """A tenant only sees its own customers."""
    svc = _state(request)
    store = _need_store(svc, "customers")
    t = _tenant(principal, tenant)
    view = await _store_call(store.customer, t, customer_id, limit=limit,
                             _fields={"customer_id": "path.customer_id", "tenant": "query.tenant"})
    if not view.known:
        raise ServiceError(404, "not_found", f"no customer {customer_id!r} is known for tenant {t!r}")
    return _json(view, svc.version())


# -- learning from outcomes (docs/learning.md) --------------------------------------------


class LearningSegmentOut(BaseModel):
    gesture_id: str
    segment: str
    acceptance: float = Field(description="Posterior mean acceptance (with a neutral prior, priority 50)")
    outcomes: int = Field(description="Acceptances and declines behind it")
    alpha: float
    beta: float
    interval: tuple[float, float] = Field(description=(
        "The 95% credible interval of the acceptance (equal-tailed): where it lies given the evidence"))
    learned: bool = Field(description="Enough outcomes to change the order")
    delivery: float | None = None
    accepted: float = Field(description="Recency-weighted acceptances")
    declined: float = Field(description="Recency-weighted declines")
    delivered: float = Field(description="Recency-weighted deliveries")
    text: str
    updated_at: str


class LearningOut(BaseModel):
    tenant: str
    enabled: bool = Field(description="Whether this server ranks by what outcomes taught")
    frozen: bool = Field(description="Outcomes no longer change the evidence (it is kept and used)")
    config: dict[str, Any] = Field(description="Segments, half-life (days), minimum evidence, prior strength")
    segments: list[LearningSegmentOut]


@router.get("/learning", response_model=LearningOut, tags=["admin"],
            summary="What the business learned from outcomes (admin; needs a store)",
            responses={404: {"model": ErrorBody, "description": "No store configured"},
                       503: {"model": ErrorBody, "description": "The store is unavailable"}})
async def get_learning(request: Request, principal: Principal = Depends(require("admin")),
                       tenant: Annotated[str | None, _LEARNING_TENANT] = None,
                       gesture: Annotated[str | None, Query(max_length=80)] = None,
                       limit: Annotated[int, Query(ge=1, le=10_000, description="Rows, most outcomes first")] = 500
                       ) -> Response:
    """Each gesture's learned acceptance per segment, whether learning is on and frozen, and
    the model's settings: for the console's insights."""
    svc = _state(request)
    store = _need_store(svc, "learning")
    t = _tenant(principal, tenant)
    state = await _store_call(store.learning_state, t, gesture=gesture, limit=limit, _fields={"tenant": "query.tenant"})
    state["enabled"] = bool(getattr(svc.recommender, "learning", True))
    return _json(LearningOut.model_validate(state), svc.version())


# -- the business profile -----------------------------------------------------------

_TENANT_QUERY = Query(max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$",
                      description="The tenant; defaults to the key's (another tenant's is 403)")


class StoredProfileOut(BaseModel):
    profile: dict[str, Any] = Field(description="The partial profile the tenant set (only its keys)")
    revision: int = Field(description="Increases with every change; a logged decision names the one in force")
    updated_by: str
    updated_at: datetime


class ProfileOut(BaseModel):
    business: str
    vertical: str | None = None
    profile: Profile = Field(description="The profile in force: the defaults, the plugins' layers, configuration, "
                                         "then the tenant's stored profile")
    sources: dict[str, str] = Field(description=(
        "Each key (dotted, e.g. money_limits.synthetic) and the layer it comes from: default, plugin:NAME, "
        "config:default, config:BUSINESS or store"))
    stored: StoredProfileOut | None = Field(default=None, description=(
        "The tenant's own profile in the memory store (PUT /v1/profile), who set it and when; null: none"))
    warnings: list[str] = Field(default_factory=list, description=(
        "A stored profile that no longer fits the layers under it is left out, and said so here"))
    cache_seconds: float | None = Field(default=None, description=(
        "A change reaches the recommendations of this server at once and of other servers sharing the "
        "store within this many seconds (the store policy's profile_cache_seconds); null without a store"))


_PROFILE_BODY = {
    "requestBody": {"required": True, "description": (
        "The tenant's profile: any of the profile's keys (a partial profile; nested sections merge key by key "
        "with the layers under it). Replaces the whole stored profile."),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Profile"},
                                         "example": {"loyal_tenure_years": 1, "high_value": 600,
                                                     "money_limits": {"genuine": 80}}}}},
}
_PROFILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No store configured"},
    422: {"model": ErrorBody, "description": "An unknown profile key or an invalid value, named in errors[].field "
                                             "(profile.loyal_tenur_years); nothing is stored"},
    503: {"model": ErrorBody, "description": "The store is unavailable"},
}


def _profile_layers(rec: Any, business: Business) -> list[tuple[str, dict[str, Any]]]:
    """The layers under a tenant's stored profile, named: each selected plugin's, configuration's."""
    from ..profile import ProfileError, merge_profiles

    layers: list[tuple[str, dict[str, Any]]] = []
    host, hook = rec.host, "recommender_business_profile"
    warnings: list[Any] = []
    for name, fn, args in host.impls(hook, rec._tenant(business).plugins):
        ok, got = host.call(name, hook, fn, args, {"business": business}, warnings)
        if not ok or got is None:
            continue
        try:
            merge_profiles(got, where=f"plugin {name}")
        except ProfileError:  # left out by the recommender too
            continue
        layers.append((f"plugin:{name}", dict(got)))
    for name in dict.fromkeys(("default", business.id)):
        if name in rec.profiles:
            layers.append((f"config:{name}", dict(rec.profiles[name])))
    return layers


def _masked(profile: dict[str, Any], admin: bool) -> dict[str, Any]:
    """The extras draw's key is the business's secret: only an admin key sees it."""
    return profile if admin or "extras_key" not in profile else {**profile, "extras_key": "***"}


def _profile_view(svc: Any, business: Business, stored: Any, admin: bool) -> ProfileOut:
    from ..memory.profiles import layer_sources

    rec = svc.recommender
    profile, warnings = rec.profile_for(business, stored)
    refused = [w.message for w in warnings if w.plugin == "memory" and w.hook == "tenant_profile"]
    layers: list[tuple[str, Any]] = _profile_layers(rec, business)
    if stored is not None and not refused:
        layers.append(("store", stored.profile))
    out = StoredProfileOut(profile=_masked(dict(stored.profile), admin), revision=stored.revision,
                           updated_by=stored.updated_by, updated_at=stored.updated_at) if stored is not None else None
    policy = getattr(svc.store, "policy", None)
    return ProfileOut(business=business.id, vertical=business.vertical,
                      profile=Profile.model_validate(_masked(profile.model_dump(), admin)),
                      sources=layer_sources(layers), stored=out, warnings=refused,
                      cache_seconds=getattr(policy, "profile_cache_seconds", None))


async def _stored_profile(svc: Any, tenant: str) -> Any:
    if svc.store is None:
        return None
    return await _store_call(svc.store.tenant_profile, tenant, _fields={"tenant": "query.tenant"})


@router.get("/profile", response_model=ProfileOut, tags=["profile"],
            summary="The business profile in force for the caller's tenant, with each key's source",
            responses={503: {"model": ErrorBody, "description": "The store is unavailable"}})
async def get_profile(request: Request, principal: Principal = Depends(require("recommend")),
                      tenant: Annotated[str | None, _TENANT_QUERY] = None,
                      vertical: Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$",
                                                            description="The business's vertical (plugins may "
                                                                        "give a trade's defaults)")] = None) -> Response:
    """The profile the recommendations use: loyalty and value scales, money limits, the extras
    rate, listing caps (docs/advice.md). Without a store: the layers of the defaults, plugins
    and configuration. ``extras_key`` is shown only to an admin key."""
    svc = _state(request)
    business = Business(id=_tenant(principal, tenant), vertical=vertical)
    stored = await _stored_profile(svc, business.id)
    view = await run_in_threadpool(_profile_view, svc, business, stored, principal.can("admin"))
    return _json(view, svc.version())


@router.put("/profile", response_model=ProfileOut, tags=["profile"], openapi_extra=_PROFILE_BODY,
            summary="Set the tenant's own business profile (the last layer)", responses=_PROFILE_RESPONSES)
async def put_profile(request: Request, principal: Principal = Depends(require("admin")),
                      tenant: Annotated[str | None, _TENANT_QUERY] = None,
                      _json_body: None = Depends(json_body)) -> Response:
    """Validated over the layers under it before anything is stored: an unknown key or a bad
    value is 422 naming it (``profile.loyal_tenur_years: unknown profile key (did you mean
    'loyal_tenure_years'?)``) and the stored profile stays as it was."""
    from ..memory.profiles import validate_layer
    from ..profile import ProfileError

    svc = _state(request)
    store = _need_store(svc, "profile")
    business = Business(id=_tenant(principal, tenant))
    layer = _json_object(await request.body())
    base = [layer_ for _, layer_ in await run_in_threadpool(_profile_layers, svc.recommender, business)]
    try:
        validate_layer(layer, base)
    except ProfileError as exc:
        errors = [FieldError(field=path, message=msg) for path, msg in exc.errors]
        raise ServiceError(422, "invalid_request", "; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
                           errors=errors) from None
    await _store_call(store.set_tenant_profile, business.id, layer, updated_by=_who(principal), base=base,
                      _fields={"tenant": "query.tenant"})
    stored = await _stored_profile(svc, business.id)
    view = await run_in_threadpool(_profile_view, svc, business, stored, principal.can("admin"))
    return _json(view, svc.version())


@router.delete("/profile", response_model=ProfileOut, tags=["profile"],
               summary="Clear the tenant's own business profile (the layers under it apply again)",
               responses={404: _PROFILE_RESPONSES[404], 503: _PROFILE_RESPONSES[503]})
async def delete_profile(request: Request, principal: Principal = Depends(require("admin")),
                         tenant: Annotated[str | None, _TENANT_QUERY] = None) -> Response:
    """Idempotent: clearing a tenant without a stored profile changes nothing. Earlier
    revisions stay in the store (logged decisions name the one they were made under)."""
    svc = _state(request)
    store = _need_store(svc, "profile")
    business = Business(id=_tenant(principal, tenant))
    await _store_call(store.delete_tenant_profile, business.id, updated_by=_who(principal),
                      _fields={"tenant": "query.tenant"})
    view = await run_in_threadpool(_profile_view, svc, business, None, principal.can("admin"))
    return _json(view, svc.version())


def _who(principal: Principal) -> str:
    return f"key:{principal.name or principal.key_id}"[:200]


def _json_object(body: bytes) -> Any:
    """A JSON body as Python data (400 when it is not JSON)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else "invalid JSON"
        raise ServiceError(400, "malformed_json", f"the body is not valid JSON: {detail}",
                           errors=[FieldError(field="", message=detail)]) from None


@router.post("/admin/reload", response_model=ReloadOut, tags=["admin"], summary="Hot-reload the rule packs",
             responses={422: {"model": ErrorBody, "description": "A pack is broken (file:line problems); "
                                                                  "the running version stays active"}})
async def post_reload(request: Request, principal: Principal = Depends(require("admin"))) -> Response:
    from .app import fan_out_reload

    svc = _state(request)
    previous = svc.version()
    try:
        version = await run_in_threadpool(svc.reload)
    except RecommenderError as exc:
        return recommender_error_response(exc, svc.version())
    signalled = fan_out_reload()
    out = ReloadOut(ruleset_version=version, previous_version=previous, changed=version != previous,
                    workers_signalled=signalled)
    return _json(out, version)


# -- probes and metrics ----------------------------------------------------------


@root_router.get("/healthz", response_model=HealthOut, tags=["probes"], summary="Alive")
async def healthz(request: Request) -> Response:
    version = _state(request).version()
    return Response(b'{"status":"ok","ruleset_version":"%s"}' % version.encode(), media_type="application/json",
                    headers={"X-Ruleset-Version": version})


@root_router.get("/readyz", response_model=ReadyOut, response_model_exclude_none=True, tags=["probes"],
                 summary="Rules loaded and store reachable",
                 responses={503: {"model": ReadyOut, "description": "Not ready"}})
async def readyz(request: Request) -> Response:
    """Ready or not. Which check failed, and why, only for an admin key: the details name the
    database (its host, user and the driver's message), which is nobody else's business."""
    svc = _state(request)
    detailed = await _asks_as_admin(request)
    checks: dict[str, ReadyCheck] = {}
    try:
        book = svc.recommender.rulebook
        checks["rules"] = ReadyCheck(ok=True, detail=f"{len(book.packs)} pack(s), {len(book.rules)} rules, "
                                                     f"version {book.version}")
    except Exception as exc:  # pragma: no cover
        checks["rules"] = ReadyCheck(ok=False, detail=str(exc))
    if svc.store is not None:
        try:
            await run_in_threadpool(_ping, svc.store)
            checks["store"] = ReadyCheck(ok=True, detail=f"{svc.store.url} reachable, schema current")
        except Exception as exc:
            if not detailed:
                log.warning("readiness: the memory store is not ready: %s", exc)
            checks["store"] = ReadyCheck(ok=False, detail=str(exc))
    ready = all(c.ok for c in checks.values())
    out = ReadyOut(ready=ready, ruleset_version=svc.version(), checks=checks if detailed else None)
    return Response(out.model_dump_json(exclude_none=True), status_code=200 if ready else 503,
                    media_type="application/json", headers={"X-Ruleset-Version": svc.version()})


async def _asks_as_admin(request: Request) -> bool:
    """True when the request carries a valid admin key (or the server runs without auth).
    Never raises: a probe answers even when keys cannot be checked (the store is down)."""
    verifier = _state(request).verifier
    if isinstance(verifier, NoAuth):
        return True
    key = extract_key(request.headers)
    if key is None or len(key) > 512:
        return False
    try:
        principal = (await run_in_threadpool(verifier.verify, key)) if verifier.blocking else verifier.verify(key)
    except Exception:  # noqa: BLE001 - the store is down: no details for anyone
        return False
    return principal is not None and principal.can("admin")


def _ping(store: Any) -> None:
    """A round trip to the database that also checks the schema is current."""
    from ..memory import db

    db.check_schema(store.engine)


@root_router.get("/metrics", tags=["probes"], summary="Prometheus metrics",
                 response_class=Response,
                 responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                  "description": "Prometheus text exposition format"}})
async def metrics(request: Request) -> Response:
    svc = _state(request)
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _jsonable(value: Any) -> Any:
    """Store/plugin objects (dataclasses, models, dates) as plain JSON data."""
    from fastapi.encoders import jsonable_encoder
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, list):
        return [_jsonable(v) for v in value]
    return jsonable_encoder(value)
