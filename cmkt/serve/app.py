"""The HTTP face of the service (FastAPI): JSON in and out, versioned under /v1, OpenAPI at /docs.

    POST /v1/students/{id}/answers      one answer {skill, correct, timestamp?} or {"answers": [...]}
    GET  /v1/students/{id}              per-skill mastery, level, attempts; practise next with reasons
    GET  /v1/students/{id}/next?skill=S P(correct) of a next attempt on S, with its parts
    GET  /v1/health                     (no key needed)
    GET  /v1/model                      which run, kind, data and skills

`skill` is one of the run's skill labels, as written in its data files (GET /v1/model lists
them). Every error is JSON: {"error": "one line"} (validation errors also carry "detail").
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Union

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from cmkt.serve.keys import KeyRing
from cmkt.serve.service import Service, ServiceError

STUDENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
ID_HELP = ("student id: 1 to 128 characters, letters, digits and _ . : @ - (starting with a letter or digit); "
           "a key limited to prefixes reads and writes only ids starting with one of them")


def _binary(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v in (0, 1):
        return int(v)
    raise ValueError("correct must be 0 or 1 (or true / false)")


def _label(v):
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ValueError("skill must be one of the run's skill labels (a string or an integer)")
    return str(v)


class Answer(BaseModel):
    """One answer of a student."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"skill": "3", "correct": 1, "timestamp": "2025-05-01T09:30:00Z"}]})
    skill: Annotated[str, BeforeValidator(_label)] = Field(description="one of the run's skill labels (GET /v1/model)")
    correct: Annotated[int, BeforeValidator(_binary)] = Field(description="1 (or true) if right, 0 (or false) if wrong")
    timestamp: dt.datetime | None = Field(None, description="when it was answered (ISO 8601 or Unix seconds); "
                                          "stored, not used for ordering: answers count in the order received")


class AnswerBatch(BaseModel):
    """Several answers of one student, in the order given; stored in one transaction."""

    model_config = ConfigDict(extra="forbid")
    answers: list[Answer]


def create_app(service: Service, keys: KeyRing) -> FastAPI:
    app = FastAPI(title="cmkt knowledge-state service",
                  description=f"Mastery of run {service.run_name!r} ({service.meta.get('kind')}), one answer at "
                              "a time. Every endpoint but /v1/health needs `Authorization: Bearer KEY`.",
                  version="1")
    app.state.service = service
    bearer = HTTPBearer(auto_error=False, description="an API key from --keys or CMKT_API_KEYS")
    app.add_middleware(BodyLimit, limit=service.settings.max_body)

    # the key checks are async (a dictionary lookup, nothing blocks): a sync dependency would cost a
    # round trip through the thread pool per request each
    async def key(cred: HTTPAuthorizationCredentials | None = Depends(bearer)):
        found = keys.find(cred.credentials if cred is not None else None)
        if found is None:
            raise ServiceError(401, "missing or unknown API key (send Authorization: Bearer KEY)")
        return found

    async def student_key(student_id: Annotated[str, Path(pattern=STUDENT_ID, description=ID_HELP)], k=Depends(key)):
        if not k.allows(student_id):
            raise ServiceError(403, f"this key may not read or write student {student_id!r}")
        return student_id

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, e: ServiceError):
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse({"error": e.message}, status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        errors = _relevant(e.errors(), e.body)
        detail = [{"where": ".".join(str(x) for x in err["loc"]), "problem": _msg(err)} for err in errors]
        first = detail[0] if detail else {"where": "request", "problem": "invalid"}
        return JSONResponse({"error": f"{first['where']}: {first['problem']}; nothing was stored",
                             "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=e.headers)

    @app.post("/v1/students/{student_id}/answers", summary="store and score answers")
    def post_answers(body: Union[Answer, AnswerBatch], student_id: str = Depends(student_key)):
        """Stores the answers (acknowledged only once committed), then scores each: the prediction the
        model had made for it, that prediction's parts (logit units; they add up to its logit), and
        the mastery of the practised skill before and after."""
        items = body.answers if isinstance(body, AnswerBatch) else [body]
        return JSONResponse(service.post(student_id, [a.model_dump() for a in items]))

    @app.get("/v1/students/{student_id}", summary="a student's mastery and what to practise next")
    def get_student(student_id: str = Depends(student_key)):
        """Per-skill mastery, level (not yet / developing / secure), attempts and the three skills to
        practise next with reasons: the numbers of the Students page and `cmkt export`."""
        return JSONResponse(service.student(student_id))

    @app.get("/v1/students/{student_id}/next", summary="P(correct) of a next attempt on a skill")
    def get_next(skill: Annotated[str, Query(description="a skill label")], student_id: str = Depends(student_key)):
        return JSONResponse(service.next(student_id, skill))

    @app.get("/v1/health", summary="is the service up (no key needed)")
    def health():
        h = service.health()
        return JSONResponse(h, status_code=200 if h["status"] == "ok" else 503)

    @app.get("/v1/model", summary="which run, kind, data and skills")
    def model(_k=Depends(key)):
        return JSONResponse(service.model_info())

    return app


def _relevant(errors: list, body) -> list:
    """Of a union body's errors, those of the form the client meant (a batch if it sent "answers")."""
    branch = "AnswerBatch" if isinstance(body, dict) and "answers" in body else "Answer"
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if len(loc) > 1 and loc[0] == "body" and loc[1] in ("Answer", "AnswerBatch"):
            if loc[1] != branch:
                continue
            loc = [loc[0], *loc[2:]]
        loc = [x for x in loc if not str(x).startswith("function-")]
        if err.get("type") == "json_invalid":
            loc = ["body"]
        out.append({**err, "loc": loc})
    return out or errors


def _msg(err: dict) -> str:
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err.get("type") == "extra_forbidden":
        msg = "unknown field (an answer has skill, correct and an optional timestamp)"
    if err.get("type") == "json_invalid":
        msg = "the body is not valid JSON"
    if err.get("type") == "string_pattern_mismatch":
        msg = ID_HELP
    return msg


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413 before it is parsed: by its Content-Length,
    or, for a body sent without one, by reading it (up to the limit) before the app sees it."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.limit:
                return await self._refuse(send)
            return await self.app(scope, receive, send)
        chunks, seen = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            chunks.append(msg.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                return await self._refuse(send)
            if not msg.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send):
        body = json.dumps({"error": f"the request body is over {self.limit} bytes; nothing was stored"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
