"""The intake API (``/api/v1``): owners' web forms and CRMs put leads in and follow them.

Every request carries one of the tenant's API keys (``Authorization: Bearer lyra_…``) and
acts as that tenant's owner on the ``api`` channel; the routes dispatch the same commands as
the CLI (``AddLead``, ``ShowLead``, ``WithdrawLead``). ``Idempotency-Key`` rides on the bus's
inbound keys, scoped per tenant and route. The OpenAPI document (``/api/v1/openapi.json``) is
generated from the pydantic models and from ``ROUTES``, the same table that mounts the routes,
so the document cannot drift from the server.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from lyra_bot.bus import Reply
from lyra_bot.commands import Actor, AddLead, AuthenticateApiKey, Role, ShowLead, WithdrawLead
from lyra_bot.domain import FIELD_LIMITS as LIMITS
from lyra_bot.domain import normalize_ref
from lyra_bot.phrases import say

if TYPE_CHECKING:
    from lyra_bot.services import Services

BASE = "/api/v1"
REF_PATTERN = r"^([A-Za-z]{1,6}-?)?[0-9]{1,9}$"  # L-1042, l1042 or 1042
REGION_PATTERN = r"^(\*|[A-Za-z0-9]{2,8}(-[A-Za-z0-9]{1,8})*)$"  # clean_lead upper-cases it
EMAIL_PATTERN = r'^$|^[^@\s<>()\[\],;:"]+@[^@\s<>()\[\],;:"]+\.[^@\s<>()\[\],;:"]+$'
_IDEMPOTENCY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")


# --- the documents ------------------------------------------------------------------------


def _text(name: str, description: str = "") -> Any:
    return Field("", max_length=LIMITS[name], description=description or None)


class LeadIn(BaseModel):
    """A new lead. Customer data (company … notes) reaches a partner only with its claim."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "product": "Firewall",
                    "region": "CH-ZH",
                    "need": "Firewall for 3 shops",
                    "company": "Velo AG",
                    "contact_name": "Lea Frei",
                    "email": "lea@velo.example",
                    "legal_basis": "consent",
                    "consent_source": "web form",
                    "consent_at": "2026-11-27",
                }
            ]
        },
    )

    product: str = Field(max_length=LIMITS["product"], pattern=r"[^\s\x00-\x1f\x7f]")
    region: str = Field(
        max_length=LIMITS["region"],
        pattern=REGION_PATTERN,
        description="Region code like CH or CH-ZH (* for everywhere).",
    )
    industry: str = _text("industry")
    size: str = _text("size")
    need: str = _text("need", "What the customer needs, shown in the pool teaser.")
    company: str = _text("company")
    contact_name: str = _text("contact_name")
    email: str = Field("", max_length=LIMITS["email"], pattern=EMAIL_PATTERN)
    phone: str = _text("phone")
    address: str = _text("address")
    notes: str = _text("notes")
    locale: str | None = Field(
        None, max_length=LIMITS["locale"], description="de, fr, it or en (else from the region)."
    )
    legal_basis: Literal["", "consent", "legitimate_interest"] = Field(
        "",
        description="Why the customer may be contacted. consent needs consent_source and "
        "consent_at; legitimate_interest needs legal_note.",
    )
    consent_source: str = _text("consent_source", "With consent: where it was given.")
    consent_at: str | None = Field(
        None, max_length=LIMITS["consent_at"], description="With consent: ISO date (and time)."
    )
    legal_note: str = _text("legal_note", "With legitimate_interest: which interest.")
    ref: str | None = Field(
        None, pattern=REF_PATTERN, description="Your own reference; default: the next L-number."
    )
    allow_duplicate: bool = Field(
        False, description="Pool it even if a live lead has the same email or phone."
    )


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


class LeadCreated(BaseModel):
    ref: str
    status: str = Field(description="open (in the pool) or held (waiting for the owner).")
    hold_reason: str = ""
    message: str


class ClaimOut(BaseModel):
    partner: str
    state: str
    claimed_at: datetime
    due_at: datetime
    ended_at: datetime | None = None


class FeedbackOut(BaseModel):
    outcome: str
    amount: str | None = None
    currency: str | None = None
    reason: str = ""
    on_time: bool
    at: datetime


class EventOut(BaseModel):
    event: str
    at: datetime
    channel: str
    partner: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class LeadDetail(BaseModel):
    """The owner's view of one lead: its data, status, claims, feedback and history."""

    ref: str
    status: str
    product: str
    region: str
    industry: str
    size: str
    need: str
    company: str
    contact_name: str
    email: str
    phone: str
    address: str
    notes: str
    hold_reason: str
    source: str
    legal_basis: str
    consent_source: str
    consent_at: datetime | None = None
    legal_note: str
    claims: list[ClaimOut]
    feedback: list[FeedbackOut]
    history: list[EventOut]


class LeadWithdrawn(BaseModel):
    ref: str
    status: str
    message: str


class FieldError(BaseModel):
    field: str
    message: str


class Error(BaseModel):
    error: str = Field(description="A stable code: unauthorized, invalid_input, rate_limited …")
    message: str
    errors: list[FieldError] = Field(default_factory=list)


# --- errors -------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors = errors or []
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = Error(error=self.code, message=self.message, errors=self.errors)
        return web.json_response(
            body.model_dump(mode="json"), status=self.status, headers=self.headers
        )


STATUS_OF_CODE = {
    "not_found": 404,
    "unknown_lead": 404,
    "forbidden": 403,
    "invalid_input": 422,
    "idempotency_key_reused": 422,
    "invalid_transition": 409,
    "rate_limited": 429,
}


def refused(reply: Reply) -> ApiError:
    """A refused command as an HTTP error; ``InvalidInput`` problems become field errors."""
    status = STATUS_OF_CODE.get(reply.code, 400)
    errors = [
        FieldError(
            field=str(p.get("field") or "body"),
            message=say(str(p.get("phrase") or reply.code), p, "en"),
        )
        for p in reply.data.get("problems") or []
    ]
    headers = {}
    if status == 429:
        headers["Retry-After"] = str(reply.data.get("retry_after", 60))
    return ApiError(status, reply.code, reply.message, errors, headers)


def _pydantic_errors(exc: ValidationError) -> ApiError:
    errors = [
        FieldError(field=".".join(str(p) for p in e["loc"]) or "body", message=e["msg"])
        for e in exc.errors(include_input=False, include_url=False)
    ]
    text = "; ".join(f"{e.field}: {e.message}" for e in errors[:10])
    return ApiError(422, "invalid_input", f"The request is not valid: {text}", errors)


# --- routes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """The API key a request authenticated with: which one, and whose."""

    id: int
    tenant_id: int


@dataclass
class Call:
    """One authenticated request: who (the key's tenant) and the services it may use."""

    request: web.Request
    services: Services
    key: Key

    @property
    def actor(self) -> Actor:
        return Actor.owner(self.key.tenant_id, "api")

    def idempotency_key(self, route: str) -> str | None:
        raw = self.request.headers.get("Idempotency-Key")
        if raw is None:
            return None
        if not _IDEMPOTENCY_RE.match(raw):
            raise ApiError(
                422,
                "invalid_input",
                "Idempotency-Key must be 1 to 200 visible ASCII characters.",
                [FieldError(field="Idempotency-Key", message="1 to 200 visible ASCII characters")],
            )
        return f"api:{self.key.tenant_id}:{route}:{raw}"

    async def body(self, model: type[BaseModel], required: bool = True) -> Any:
        limit = self.services.settings.api_max_bytes
        too_big = ApiError(413, "too_large", f"The request body is larger than {limit} bytes.")
        if (self.request.content_length or 0) > limit:
            raise too_big
        raw = bytearray()
        while chunk := await self.request.content.read(16 * 1024):
            raw.extend(chunk)
            if len(raw) > limit:
                raise too_big
        if not raw.strip() and not required:
            return model()
        try:
            return model.model_validate_json(bytes(raw))
        except ValidationError as exc:
            raise _pydantic_errors(exc) from None

    @property
    def ref(self) -> str:
        """The lead reference in the path; anything else is no lead (and never reaches a key)."""
        ref = self.request.match_info["ref"]
        if not re.match(REF_PATTERN, ref):
            raise ApiError(404, "unknown_lead", "There is no such lead.")
        return ref

    async def dispatch(
        self, cmd: Any, route: str | None = None, body: BaseModel | None = None
    ) -> Reply:
        """Run ``cmd``; with a ``route``, a retry with the same Idempotency-Key is answered
        from the first run (reads take none: their stored answer keeps no customer data).
        The same key with another ``body`` is refused (422), never taken for a retry."""
        key = self.idempotency_key(route) if route else None
        fingerprint = None
        if key is not None:
            canonical = json.dumps(body.model_dump(mode="json") if body else None, sort_keys=True)
            fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
        reply = await self.services.bus.dispatch(cmd, self.actor, key=key, fingerprint=fingerprint)
        if not reply.ok:
            raise refused(reply)
        return reply


Endpoint = Callable[[Call], Awaitable[web.Response]]


@dataclass
class Route:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    ok: tuple[int, type[BaseModel]]
    body: type[BaseModel] | None = None
    body_required: bool = True
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def _json(model: BaseModel, status: int, reply: Reply) -> web.Response:
    headers = {"Idempotent-Replayed": "true"} if reply.data.get("duplicate") else {}
    return web.json_response(model.model_dump(mode="json"), status=status, headers=headers)


async def create_lead(call: Call) -> web.Response:
    data: LeadIn = await call.body(LeadIn)
    fields = data.model_dump(exclude={"allow_duplicate"})
    cmd = AddLead(**fields, source="api", allow_duplicate=data.allow_duplicate)
    reply = await call.dispatch(cmd, "create", data)
    lead = reply.data["lead"]
    out = LeadCreated(
        ref=lead["ref"],
        status=lead["status"],
        hold_reason=reply.data.get("hold_reason") or "",
        message=reply.message,
    )
    return _json(out, 201, reply)


async def show_lead(call: Call) -> web.Response:
    reply = await call.dispatch(ShowLead(call.ref))
    data = reply.data
    out = LeadDetail.model_validate(
        {
            **data["lead"],
            "claims": data["claims"],
            "feedback": data["feedback"],
            "history": data["history"],
        }
    )
    # The owner's view shows customer data: it is logged like every other disclosure.
    await call.services.bus.disclosed(reply, call.actor, f"api lead view (key {call.key.id})")
    return _json(out, 200, reply)


async def withdraw_lead(call: Call) -> web.Response:
    data: WithdrawIn = await call.body(WithdrawIn, required=False)
    ref = call.ref
    reply = await call.dispatch(
        WithdrawLead(ref, data.reason), f"withdraw:{normalize_ref(ref)}", data
    )
    out = LeadWithdrawn(ref=reply.data["ref"], status="withdrawn", message=reply.message)
    return _json(out, 200, reply)


ROUTES = [
    Route(
        "post",
        "/leads",
        create_lead,
        "Add a lead to the pool (or hold it, if it looks like a duplicate or lacks consent).",
        (201, LeadCreated),
        body=LeadIn,
    ),
    Route(
        "get",
        "/leads/{ref}",
        show_lead,
        "The owner's view of a lead: status, claims, feedback and history.",
        (200, LeadDetail),
        errors={404: "No such lead in this tenant."},
    ),
    Route(
        "post",
        "/leads/{ref}/withdraw",
        withdraw_lead,
        "Take a lead out of the pool; a partner holding it is told to stop.",
        (200, LeadWithdrawn),
        body=WithdrawIn,
        body_required=False,
        errors={404: "No such lead in this tenant.", 409: "The lead is no longer live."},
    ),
]


# --- authentication, rate limit, mounting -------------------------------------------------


async def authenticate(request: web.Request, services: Services) -> Key:
    """The tenant's live key named by the bearer token, or 401 (one answer for every failure)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    reply = None
    if scheme.lower() == "bearer" and token.strip():
        system = Actor(Role.SYSTEM, "api", None)
        reply = await services.bus.dispatch(AuthenticateApiKey(token.strip()), system)
    if reply is None or not reply.ok:
        raise ApiError(
            401,
            "unauthorized",
            "A valid API key is needed: 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": 'Bearer realm="lyra"'},
        )
    return Key(int(reply.data["key_id"]), int(reply.data["tenant_id"]))


def _endpoint(route: Route, services: Services) -> Callable[[web.Request], Awaitable[Any]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            key = await authenticate(request, services)
            limits = services.bus.rate_limits
            wait = await limits.hit(limits.api, "api", str(key.id))
            if wait is not None:
                raise ApiError(
                    429,
                    "rate_limited",
                    f"Too many requests with this key: at most "
                    f"{limits.api.amount if limits.api else 0} a minute. "
                    f"Try again in {wait} seconds.",
                    headers={"Retry-After": str(wait)},
                )
            return await route.endpoint(Call(request, services, key))
        except ApiError as exc:
            return exc.response()

    return handle


def add_routes(app: web.Application, services: Services) -> None:
    document = openapi()

    async def serve_openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(f"{BASE}/openapi.json", serve_openapi)
    for route in ROUTES:
        app.router.add_route(route.method.upper(), BASE + route.path, _endpoint(route, services))


# --- OpenAPI --------------------------------------------------------------------------------


REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "Present (true) when this is the stored answer to an earlier request "
        "with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        out["headers"] = headers
    return out


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``ROUTES``, schemas generated by pydantic."""
    inputs = {r.body for r in ROUTES if r.body is not None}
    outputs = {r.ok[1] for r in ROUTES} | {Error}
    pairs = [(m, "validation") for m in inputs] + [(m, "serialization") for m in outputs]
    refs, top = models_json_schema(
        sorted(pairs, key=lambda p: p[0].__name__), ref_template="#/components/schemas/{model}"
    )
    ref_param = {
        "name": "ref",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": REF_PATTERN},
        "description": "The lead's reference, like L-1042.",
    }
    idem_param = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,200}$"},
        "description": "Retries with the same key get the first answer; nothing is done "
        "twice. The same key with another body gets 422 (idempotency_key_reused).",
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        status, model = route.ok
        responses: dict[str, Any] = {
            str(status): {
                "description": "Done.",
                "content": {"application/json": {"schema": refs[(model, "serialization")]}},
                **({"headers": REPLAYED_HEADER} if route.method == "post" else {}),
            },
            "401": _error_response("No key, an unknown key or a revoked key."),
            "422": _error_response("Invalid input; errors name each field."),
            "429": _error_response(
                "Too many requests; wait for Retry-After seconds.",
                {"Retry-After": {"schema": {"type": "integer"}}},
            ),
        }
        for code, text in route.errors.items():
            responses[str(code)] = _error_response(text)
        operation: dict[str, Any] = {
            "operationId": route.endpoint.__name__,
            "summary": route.summary,
            "parameters": ([ref_param] if "{ref}" in route.path else [])
            + ([idem_param] if route.method == "post" else []),
            "responses": responses,
        }
        if route.body is not None:
            operation["requestBody"] = {
                "required": route.body_required,
                "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
            }
            responses["413"] = _error_response("The body is larger than LYRA_API_MAX_BYTES.")
        paths.setdefault(BASE + route.path, {})[route.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lyra intake API",
            "version": "1",
            "description": "Put leads into the pool and follow them. "
            "Authenticate with 'Authorization: Bearer <key>' "
            "(lyra-bot tenant api-key create <tenant>).",
        },
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
