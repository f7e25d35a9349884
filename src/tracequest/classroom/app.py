"""The board's Flask app: the HTTP API the learners' checks report to, and the page the instructor projects.

``create_app(store)`` is every endpoint and how each request is checked; it
lives apart from :mod:`tracequest.classroom.server`, which runs it on waitress,
so that the endpoints read in one place without the serving around them.

Security, in one place: every token is a ``secrets.token_urlsafe(32)`` kept as
its SHA-256 and compared in constant time (:mod:`tracequest.classroom.auth`);
it travels only in ``Authorization: Bearer`` or the HttpOnly, SameSite=Strict
``tq_class`` cookie, never in a URL (the page's ``#instructor=`` link is a
fragment, which no browser sends). A POST authenticated by the cookie must
also carry ``X-Requested-With: tracequest``, which no other site's page can
add without the board's consent. Bodies are bounded (256 KiB), every record
is validated (:func:`tracequest.classroom.records.validate`), requests are
rate limited per token and joins per address, and every refusal is a 4xx JSON
``{"error": ...}`` that changed nothing.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
from functools import wraps
from importlib import resources

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from tracequest.classroom.auth import Buckets, Caller, Limits, Refused, hash_token, new_token, refuse_rate
from tracequest.classroom.events import EVENTS_ENVIRON_KEY, EventHub, update_event
from tracequest.classroom.records import FIELDS, ClassError, clean_github_username, clean_name, validate
from tracequest.classroom.roster import ROSTER_COLUMNS, parse_roster_csv
from tracequest.classroom.store import BoardStore, ClassFull

log = logging.getLogger(__name__)

DEFAULT_IDLE_MINUTES = 10
MAX_BODY_BYTES = 256 * 1024
MAX_RECORDS_PER_REQUEST = 100
COOKIE = "tq_class"
COOKIE_MAX_AGE_S = 24 * 3600
#: The header a POST authenticated by the cookie must carry (the page's fetch sets it).
CSRF_HEADER, CSRF_VALUE = "X-Requested-With", "tracequest"

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_MESSAGES = {
    400: "the request is malformed",
    401: "this needs a class token",
    403: "that is not allowed",
    404: "there is no such page on the class board",
    405: "that method is not allowed here",
    413: f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB",
    415: "that content type is not accepted here",
    429: "too many requests; wait a moment and try again",
}


def create_app(store: BoardStore, idle_minutes: int = DEFAULT_IDLE_MINUTES, limits: Limits | None = None,
               join_url: str | None = None) -> Flask:
    """The board's Flask app over ``store``, whose class must exist.

    ``join_url`` is the address learners join (shown on the instructor's
    page); by default the page uses the address it was opened at.
    """
    limits = limits or Limits()
    if store.class_info() is None:
        raise ClassError("the board's store has no class yet")
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.json.compact = True
    hub = EventHub(store, limits.max_streams)
    app.extensions["tracequest_class_board"] = hub
    per_token = Buckets(limits.token_rate, limits.token_burst)
    per_address = Buckets(limits.join_rate, limits.join_burst)
    page = {name: (resources.files("tracequest.classroom") / "page" / name).read_bytes()
            for name in ("board.html", "board.js", "board.css")}

    def caller_for(token: str | None, via_cookie: bool) -> Caller:
        if not token:
            raise Refused(401, "this needs a class token: open the link the board printed, or send "
                               "Authorization: Bearer <token>")
        token_hash = hash_token(token)
        if store.class_info().is_instructor(token_hash):
            caller = Caller("instructor", None, via_cookie)
        else:
            learner = store.learner_by_token_hash(token_hash)
            if learner is None:
                raise Refused(401, "that token is not one of this board's")
            if learner.removed:
                raise Refused(403, "the instructor removed you from this class")
            caller = Caller("learner", learner, via_cookie)
        wait = per_token.take(token_hash)
        if wait:
            raise refuse_rate(wait)
        return caller

    def authenticate() -> Caller:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer":
                raise Refused(401, "the Authorization header must be: Bearer <token>")
            caller = caller_for(token.strip(), via_cookie=False)
        else:
            caller = caller_for(request.cookies.get(COOKIE), via_cookie=True)
        if caller.via_cookie and request.method == "POST" and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
            raise Refused(403, f"a request signed in by the board's cookie must carry {CSRF_HEADER}: {CSRF_VALUE}")
        return caller

    def signed_in(role: str | None = None):
        """The view needs a token (``role="instructor"``: the instructor's); the caller is ``g.caller``."""
        def decorate(view):
            @wraps(view)
            def guarded(*args, **kwargs):
                g.caller = authenticate()
                if role is not None and g.caller.role != role:
                    raise Refused(403, f"only the {role} can do that")
                return view(*args, **kwargs)
            return guarded
        return decorate

    def limit_address() -> None:
        wait = per_address.take(request.remote_addr or "")
        if wait:
            raise refuse_rate(wait)

    def json_body() -> object:
        if request.mimetype != "application/json":
            raise Refused(415, "send the body as JSON, with Content-Type: application/json")
        try:
            return json.loads(request.get_data(cache=False), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise Refused(400, "the body is not valid JSON") from None

    def only_keys(body: object, allowed: tuple[str, ...], what: str) -> dict:
        if not isinstance(body, dict):
            raise Refused(400, f"{what} takes a JSON object")
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise Refused(400, f"{what} takes {', '.join(allowed)}; not {unknown[0]!r}")
        return body

    def open_class():
        info = store.class_info()
        if info.closed:
            raise Refused(403, "the class is closed")
        return info

    @app.before_request
    def bounded_body():
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise Refused(413, _MESSAGES[413])

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = _CSP
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, Refused):
            message, extra = exc.description, exc.extra_headers
        else:
            message = _MESSAGES.get(exc.code, "the board cannot answer that request")
            extra = {name: value for name, value in exc.get_headers() if name.lower() == "allow"}
        response = jsonify(error=message)
        response.status_code = exc.code
        response.headers.update(extra)
        return response

    @app.errorhandler(Exception)
    def failure(exc: Exception):
        log.exception("the class board failed on %s %s", request.method, request.path)
        response = jsonify(error="the class board failed on this request; its terminal says why")
        response.status_code = 500
        return response

    @app.get("/health")
    def health():
        return jsonify(ok=True)

    @app.get("/")
    def board_page():
        return Response(page["board.html"], mimetype="text/html")

    @app.get("/board.js")
    def board_script():
        return Response(page["board.js"], mimetype="text/javascript")

    @app.get("/board.css")
    def board_style():
        return Response(page["board.css"], mimetype="text/css")

    @app.post("/api/join")
    def join():
        limit_address()
        body = only_keys(json_body(), ("code", "name", "github_username"), "a join")
        code = body.get("code")
        if not isinstance(code, str):
            raise Refused(400, "'code' must be a string")
        info = store.class_info()
        if not hmac.compare_digest(code.strip().upper().encode(), info.code.encode()):
            raise Refused(403, "that is not this class's code; check the code your instructor shared")
        if info.closed:
            raise Refused(403, "the class is closed")
        try:
            name = clean_name(body.get("name"))
            github_username = clean_github_username(body.get("github_username"))
        except ClassError as exc:
            raise Refused(400, str(exc)) from None
        token = new_token()
        try:
            learner_id = store.join(name, github_username, hash_token(token))
        except ClassFull as exc:
            raise Refused(403, str(exc)) from None
        hub.notify()
        return jsonify(learner_id=learner_id, token=token), 201

    @app.post("/api/session")
    def session():
        limit_address()
        body = only_keys(json_body(), ("token",), "a sign-in")
        token = body.get("token")
        if not isinstance(token, str):
            raise Refused(400, "'token' must be a string")
        caller = caller_for(token, via_cookie=False)
        response = jsonify(role=caller.role, learner_id=caller.learner_id)
        response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, path="/", httponly=True, samesite="Strict")
        return response

    @app.post("/api/records")
    @signed_in()
    def records():
        if g.caller.role != "learner":
            raise Refused(403, "only learners send records")
        open_class()
        body = json_body()
        if isinstance(body, dict) and "records" in body:
            items = only_keys(body, ("records",), "a batch of records")["records"]
            if not isinstance(items, list):
                raise Refused(400, "'records' must be a list")
            if len(items) > MAX_RECORDS_PER_REQUEST:
                raise Refused(400, f"send at most {MAX_RECORDS_PER_REQUEST} records at once")
            batch = True
        else:
            items, batch = [body], False
        checked = []
        for number, item in enumerate(items, start=1):
            try:
                checked.append(validate(item))
            except ClassError as exc:
                raise Refused(400, f"record {number}: {exc}" if batch else str(exc)) from None
        for number, record in enumerate(checked, start=1):
            if record["learner_id"] != g.caller.learner_id:
                which = f"record {number} is" if batch else "the record is"
                raise Refused(403, f"{which} another learner's; a learner sends only their own records")
        stored, duplicates = store.add_records(checked)
        if stored:
            hub.notify()
        return jsonify(stored=stored, duplicates=duplicates)

    @app.get("/api/board")
    @signed_in()
    def board():
        minutes = idle_minutes
        if "idle" in request.args:
            text = request.args["idle"]
            if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 240):
                raise Refused(400, "'idle' must be a whole number of minutes from 1 to 240")
            minutes = int(text)
        data = store.board(minutes, learner_id=g.caller.learner_id)
        if g.caller.role == "instructor":
            data["class"]["join_url"] = join_url
        data["viewer"] = {"role": g.caller.role, "learner_id": g.caller.learner_id}
        return jsonify(data)

    @app.get("/api/events")
    @signed_in()
    def events():
        if not hub.has_room():
            raise Refused(503, f"the board has {limits.max_streams} live pages open already; this page "
                               f"refreshes by itself instead", {"Retry-After": "30"})
        version = store.version
        request.environ[EVENTS_ENVIRON_KEY] = (hub, version)
        first = b"retry: 3000\n\n" + update_event(version)
        return Response(iter([first]), mimetype="text/event-stream", headers={"X-Accel-Buffering": "no"})

    @app.get("/api/export.json")
    @signed_in("instructor")
    def export_json():
        info = store.class_info()
        records = [{name: row[name] for name in (*FIELDS, "name")} for row in store.export_records()]
        response = jsonify({"class": {"code": info.code, "created_at": info.created_at, "closed": info.closed},
                            "learners": store.learners(), "records": records})
        response.headers["Content-Disposition"] = f'attachment; filename="{info.code}-records.json"'
        return response

    @app.get("/api/export.csv")
    @signed_in("instructor")
    def export_csv():
        rows = ([row[name] for name in (*FIELDS, "name")] for row in store.export_records())
        return _csv_response((*FIELDS, "name"), rows, f"{store.class_info().code}-records.csv")

    @app.get("/api/roster.csv")
    @signed_in("instructor")
    def roster_csv():
        rows = ([entry[name] for name in ROSTER_COLUMNS] for entry in store.roster())
        return _csv_response(ROSTER_COLUMNS, rows, f"{store.class_info().code}-roster.csv")

    @app.post("/api/roster")
    @signed_in("instructor")
    def roster_import():
        if request.mimetype != "text/csv":
            raise Refused(415, "send the roster as CSV, with Content-Type: text/csv")
        try:
            text = request.get_data(cache=False).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Refused(400, "the roster must be UTF-8 text") from None
        try:
            result = store.import_roster(parse_roster_csv(text))
        except ClassFull as exc:
            raise Refused(403, str(exc)) from None
        except ClassError as exc:
            raise Refused(400, str(exc)) from None
        hub.notify()
        return jsonify(result)

    @app.post("/api/learners/<learner_id>/remove")
    @signed_in("instructor")
    def remove(learner_id: str):
        deleted = store.remove_learner(learner_id)
        if deleted is None:
            raise Refused(404, f"there is no learner {learner_id[:64]!r} on this board")
        hub.notify()
        return jsonify(removed=learner_id, records_deleted=deleted)

    @app.post("/api/reset")
    @signed_in("instructor")
    def reset():
        deleted = store.reset()
        hub.notify()
        return jsonify(deleted=deleted)

    @app.post("/api/close")
    @signed_in("instructor")
    def close():
        store.close_class()
        hub.notify()
        return jsonify(closed=True)

    return app


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _csv_cell(value: object) -> object:
    """A learner's text as a spreadsheet will not run it: one starting with = + - @ gets a leading '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_response(columns, rows, filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row])
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
