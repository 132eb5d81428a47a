"""The review page: a small Starlette app on 127.0.0.1 that shows a project's rendered chapters with
their audio, every take of every segment, and saves a producer's decisions to review.yaml.

Security (the page can change what a render produces, and it serves files):

* it binds 127.0.0.1 only; the Host header must be that address (or localhost) with its port, so a
  DNS-rebound name cannot reach it;
* every request carries the random token printed with the URL (``?token=`` or the X-Review-Token
  header): none -> 401, a wrong one -> 403;
* requests that change anything are POSTs that must come from the page itself: Origin equal to the
  server's own origin and the page's CSRF token in X-CSRF-Token;
* files are served from the delivery folder (audio and captions only) and the store (by take key)
  only: ``../``, absolute paths, hidden folders, percent-encoded tricks and symlinks that lead out
  are refused;
* bad requests (malformed JSON, unknown segment or chapter ids, bad values) get a 4xx with a
  one-line JSON message; an unexpected failure is a 500 with one line, the traceback goes to the log.

It reads manifests and the store and writes only review.yaml (atomically, under its lock), so it
never blocks or disturbs a running render.
"""
from __future__ import annotations

import json
import logging
import secrets
import socket
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import InputError
from . import actions
from . import decisions as dec
from .listing import Review, chapter_ids, chapter_view

log = logging.getLogger("dia_core.review")

AUDIO_SUFFIXES = {".mp3": "audio/mpeg", ".flac": "audio/flac", ".wav": "audio/wav", ".vtt": "text/vtt",
                  ".srt": "text/plain"}
MAX_BODY = 64 * 1024
PEAK_BINS = 1000
_ACTIONS = ("pin", "unpin", "retake", "alternatives", "text")


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_SECURITY_HEADERS)


_SECURITY_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                     "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}


def safe_file(base: Path, relative: str, suffixes) -> Path:
    """``relative`` inside ``base`` as an existing file with one of ``suffixes``; Refused otherwise.
    The path arrives percent-decoded once (by the server): a '%' left in it is an encoding trick."""
    if not relative or "\x00" in relative or "\\" in relative or "%" in relative or relative.startswith("/"):
        raise Refused(403, "path refused")
    parts = PurePosixPath(relative).parts
    if any(p in ("..", ".") or p.startswith(".") for p in parts) or PurePosixPath(relative).is_absolute():
        raise Refused(403, "path refused")
    base = base.resolve()
    try:
        full = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        raise Refused(404, "no such file") from None
    if not full.is_relative_to(base):   # a symlink that leads out
        raise Refused(403, "path refused")
    if full.suffix.lower() not in suffixes or not full.is_file():
        raise Refused(404, "no such file")
    return full


@lru_cache(maxsize=32)
def _peaks_cached(path: str, mtime_ns: int, size: int, bins: int) -> list[float]:
    del mtime_ns, size  # cache key only: a re-rendered master is read again
    info = sf.info(path)
    per_bin = max(1, -(-info.frames // bins))
    peaks = []
    for block in sf.blocks(path, blocksize=per_bin, dtype="float32", always_2d=True):
        peaks.append(round(float(np.abs(block).max()) if len(block) else 0.0, 4))
    return peaks


def chapter_peaks(review: Review, chapter_id: str, bins: int = PEAK_BINS) -> list[float]:
    """A level strip of the chapter: max |sample| per bin, from the float master (else none)."""
    master = review.project.work_dir / "masters" / f"{chapter_id}.wav"
    try:
        st = master.stat()
        return _peaks_cached(str(master), st.st_mtime_ns, st.st_size, bins)
    except (OSError, RuntimeError):
        return []


def create_app(review: Review, token: str, csrf_token: str, hosts: set[str]) -> Starlette:
    """The review app. ``hosts``: the Host header values it answers (its own address and port)."""

    def page(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        html = resources.files("dia_core").joinpath("review", "static", "review.html").read_text("utf-8")
        html = (html.replace("{{TOKEN}}", token).replace("{{CSRF}}", csrf_token).replace("{{NONCE}}", nonce)
                .replace("{{TITLE}}", _html_escape(review.project.title)))
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
               "media-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
               "base-uri 'none'; form-action 'none'")
        return HTMLResponse(html, headers={**_SECURITY_HEADERS, "Content-Security-Policy": csp})

    def project(request: Request) -> Response:
        chapters = []
        for cid in chapter_ids(review):
            try:
                view = chapter_view(review, cid)
                chapters.append({"id": cid, "title": view["title"]})
            except InputError:
                continue   # a manifest being replaced right now: listed again on the next load
        d = dec.load(review.root)
        return JSONResponse({"title": review.project.title, "chapters": chapters,
                             "lexicon": {**review.project.lexicon, **d.lexicon},
                             "review_lexicon": d.lexicon}, headers=_SECURITY_HEADERS)

    def chapter(request: Request) -> Response:
        cid = request.path_params["chapter"]
        view = chapter_view(review, cid)
        view["peaks"] = chapter_peaks(review, cid)
        return JSONResponse(view, headers=_SECURITY_HEADERS)

    def out_file(request: Request) -> Response:
        path = safe_file(review.out_dir, request.path_params["path"], AUDIO_SUFFIXES)
        return FileResponse(path, media_type=AUDIO_SUFFIXES[path.suffix.lower()], headers=_SECURITY_HEADERS)

    def take_file(request: Request) -> Response:
        key = request.path_params["key"]
        if not dec.TAKE_KEY_RE.match(key):
            raise Refused(404, "not a take key")
        take = review.store.get(key)
        if take is None:
            raise Refused(404, f"take {key[:12]} is not in the store")
        path = safe_file(review.store.root, take.audio_path.relative_to(review.store.root).as_posix(), {".wav"})
        return FileResponse(path, media_type="audio/wav", headers=_SECURITY_HEADERS)

    async def segment_action(request: Request) -> Response:
        await _check_write(request)
        sid, action = request.path_params["segment"], request.path_params["action"]
        if action not in _ACTIONS:
            raise Refused(404, f"unknown action {action!r} (one of {', '.join(_ACTIONS)})")
        if not dec.SEGMENT_ID_RE.match(sid):
            raise Refused(404, f"unknown segment {sid!r}")
        body = await _json_body(request)
        if action == "pin":
            result = actions.pin(review, sid, _field(body, "take", str, required=True))
        elif action == "unpin":
            result = actions.unpin(review, sid)
        elif action == "retake":
            result = actions.retake(review, sid, _field(body, "note", str) or "")
        elif action == "alternatives":
            result = actions.alternatives(review, sid, _field(body, "count", int, required=True))
        else:
            result = actions.fix_text(review, sid, _field(body, "text", str))
        return JSONResponse(result, headers=_SECURITY_HEADERS)

    async def lexicon(request: Request) -> Response:
        await _check_write(request)
        body = await _json_body(request)
        result = actions.add_lexicon(review, _field(body, "word", str, required=True),
                                     _field(body, "replacement", str, required=True))
        return JSONResponse(result, headers=_SECURITY_HEADERS)

    async def _check_write(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin != f"http://{request.headers.get('host')}":
            raise Refused(403, "cross-origin request refused")
        if not secrets.compare_digest(request.headers.get("x-csrf-token", ""), csrf_token):
            raise Refused(403, "missing or wrong CSRF token")

    routes = [
        Route("/", page), Route("/api/project", project), Route("/api/chapters/{chapter}", chapter),
        Route("/audio/out/{path:path}", out_file), Route("/audio/take/{key}", take_file),
        Route("/api/segments/{segment}/{action}", segment_action, methods=["POST"]),
        Route("/api/lexicon", lexicon, methods=["POST"]),
    ]

    async def refused(request: Request, exc: Refused) -> Response:
        return _error(exc.status, str(exc))

    async def bad_input(request: Request, exc: InputError) -> Response:
        status = 404 if exc.field in ("segment", "chapter") else 400
        return _error(status, exc.message if status == 404 else str(exc))

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("review request %s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); details in the server log")

    async def http_error(request: Request, exc) -> Response:
        return _error(exc.status_code, exc.detail if isinstance(exc.detail, str) else "error")

    from starlette.exceptions import HTTPException
    app = Starlette(routes=routes, exception_handlers={Refused: refused, InputError: bad_input,
                                                       HTTPException: http_error, Exception: failed})
    return _Guard(app, token, hosts)


class _Guard:
    """ASGI wrapper run before routing: the Host must be ours and every request needs the token."""

    def __init__(self, app, token: str, hosts: set[str]):
        self.app, self.token, self.hosts = app, token, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("host") not in self.hosts:
            return await _error(421, "unknown host")(scope, receive, send)
        given = headers.get("x-review-token") or _query_token(scope.get("query_string", b""))
        if not given:
            return await _error(401, "token required (use the URL `dia-studio review` printed)")(scope, receive, send)
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return await _error(403, "wrong token")(scope, receive, send)
        return await self.app(scope, receive, send)


def _query_token(query: bytes) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(query.decode("latin-1")).get("token")
    return values[0] if values else None


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Refused(413, f"request body over {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Refused(400, f"malformed JSON: {e}") from None
    if not isinstance(body, dict):
        raise Refused(400, "the request body must be a JSON object")
    return body


def _field(body: dict, name: str, kind: type, required: bool = False):
    value = body.get(name)
    if value is None:
        if required:
            raise Refused(400, f"{name}: required")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Refused(400, f"{name}: must be {'text' if kind is str else 'an integer'}")
    return value


def _html_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("'", "&#39;"))


def make_server(review: Review, port: int = 0):
    """(uvicorn server, its listening socket on 127.0.0.1, the URL with the token)."""
    import uvicorn

    token, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}", field="--port") from None
    sock.listen(64)
    port = sock.getsockname()[1]
    app = create_app(review, token, csrf_token, {f"127.0.0.1:{port}", f"localhost:{port}"})
    # no access log: request lines carry the token
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    return server, sock, f"http://127.0.0.1:{port}/?token={token}"


def serve(review: Review, port: int = 0, say: Callable[[str], None] = print) -> int:
    """Serve the review page on 127.0.0.1 until Ctrl-C; prints its URL (with the token) and opens nothing."""
    server, sock, url = make_server(review, port)
    say(f"review: {url}")
    say(f"reading {review.out_dir} and {review.store.root}; decisions go to {dec.review_path(review.root)}; "
        "Ctrl-C stops")
    server.run(sockets=[sock])
    return 0
