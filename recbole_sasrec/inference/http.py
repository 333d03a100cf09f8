"""An exported model answering HTTP requests, with the standard library only.

    python -m recbole_sasrec.inference.http model_dir/ --port 8000

    POST /         {"items": ["242", "302"], "k": 10, "exclude": ["51"]}
                -> 200 {"items": [{"item": "377", "score": 4.1}, ...]}   (best first)
    GET /health -> 200 {"status": "ok"}

Every refusal is JSON, ``{"error": "..."}``, naming what was wrong: 400 for a body that is not
a request (or names unknown items), 411 without a Content-Length (chunked bodies included), 413
for a Content-Length above ``max_body`` (before reading the body), 408 when the body does not
arrive within ``timeout`` seconds, 404 / 405 for other paths and methods, 500 (logged, details
kept out of the reply) when the model fails. One thread per connection: a server for one
machine; put a reverse proxy in front of it for TLS, connection limits and slow clients.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from math import inf
from urllib.parse import urlsplit

from .artifact import Artifact
from .request import Refused, parse_request

log = logging.getLogger("recbole_sasrec.http")

MAX_BODY = 1 << 20  # bytes: a session of tens of thousands of tokens
TIMEOUT = 10.0  # seconds for the whole body, and for each read or write of the connection
ROUTES = {"/": ("POST",), "/health": ("GET", "HEAD")}
# request lines and paths are the client's: control characters would forge log lines
_PRINTABLE = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


class Handler(BaseHTTPRequestHandler):
    """``POST /`` recommends, ``GET /health`` answers; the server holds the model and limits."""

    protocol_version = "HTTP/1.1"  # keep-alive; a connection is closed when a body goes unread
    default_request_version = "HTTP/1.0"  # not 0.9: every reply, refusals too, has a status line

    _body_read = False

    def version_string(self) -> str:
        return "recbole_sasrec"  # not the Python version

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # each read and write of the socket
        super().setup()

    def parse_request(self) -> bool:
        self._body_read = False  # per request: a connection is kept alive between requests
        return super().parse_request()

    # ---- replies ---------------------------------------------------------------------------
    def _reply(
        self, status: int, body: dict, headers: dict[str, str] | None = None, close=False
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close or self._unread_body():  # an unread body would be read as the next request
            self.send_header("Connection", "close")  # sets close_connection
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _unread_body(self) -> bool:
        return not self._body_read and (
            "Transfer-Encoding" in self.headers or self.headers.get("Content-Length", "0") != "0"
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """The base class's own refusals (request line, headers, methods) in JSON too."""
        self.log_error("%d %s", code, message or "")
        self._reply(code, {"error": message or HTTPStatus(code).phrase}, close=True)

    # ---- logging: the module's logger, never stderr ----------------------------------------
    def log_message(self, format: str, *args) -> None:
        log.info("%s %s", self.address_string(), (format % args).translate(_PRINTABLE))

    def log_error(self, format: str, *args) -> None:
        log.warning("%s %s", self.address_string(), (format % args).translate(_PRINTABLE))

    # ---- requests --------------------------------------------------------------------------
    def _check(self) -> int:
        """Refuse what the request line and headers already show, before any body is read;
        the body's length (0 for GET)."""
        path = urlsplit(self.path).path
        if path not in ROUTES:
            raise Refused(
                HTTPStatus.NOT_FOUND, f"no path {path!r:.200}; allowed: POST /, GET /health"
            )
        if self.command not in ROUTES[path]:
            allowed = ", ".join(ROUTES[path])
            raise Refused(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{self.command} {path}: allowed: {allowed}",
                {"Allow": allowed},
            )
        return self._length() if self.command == "POST" else 0

    def _length(self) -> int:
        if "Transfer-Encoding" in self.headers:
            raise Refused(
                HTTPStatus.LENGTH_REQUIRED,
                f"Transfer-Encoding {self.headers['Transfer-Encoding']!r:.80} is not accepted; "
                f"send the body with a Content-Length",
            )
        given = self.headers.get_all("Content-Length") or []
        if not given:
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "no Content-Length: the body's size in bytes")
        # int() would take "+5", " 5", "5_0" and several headers would disagree
        if len(given) > 1 or not re.fullmatch(r"[0-9]+", given[0]):
            raise Refused(
                HTTPStatus.BAD_REQUEST,
                f"Content-Length {', '.join(given)!r:.80}; allowed: one number of bytes",
            )
        # int() refuses over 4300 digits; 19 digits are far above any limit already
        if len(given[0]) > 19 or int(given[0]) > self.server.max_body:
            raise Refused(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"Content-Length {given[0]:.40} is above the server's limit of "
                f"{self.server.max_body} bytes",
            )
        return int(given[0])

    def _body(self, length: int) -> bytes:
        """The body, within the server's timeout for all of it (a client sending one byte at a
        time would otherwise renew the socket's timeout at each byte)."""
        deadline = time.monotonic() + self.server.request_timeout
        chunks, left = [], length
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.connection.settimeout(remaining)
            chunk = self.rfile.read1(min(left, 1 << 16))
            if not chunk:
                raise Refused(
                    HTTPStatus.BAD_REQUEST,
                    f"the body ended after {length - left} of its {length} bytes",
                )
            chunks.append(chunk)
            left -= len(chunk)
        self.connection.settimeout(self.timeout)
        self._body_read = True
        return b"".join(chunks)

    def handle_expect_100(self) -> bool:
        """Refuse before the client sends a body we would not read (``Expect: 100-continue``)."""
        try:
            self._check()
        except Refused as refused:
            self._refuse(refused)
            return False
        return super().handle_expect_100()

    def _refuse(self, refused: Refused) -> None:
        self.log_error("%d %s", refused.status, refused)
        self._reply(refused.status, {"error": str(refused)}, refused.headers)

    def _answer(self) -> None:
        try:
            length = self._check()
            if self.command != "POST":
                self._reply(HTTPStatus.OK, {"status": "ok"})
                return
            items, k, exclude = parse_request(self._body(length))
        except Refused as refused:
            self._refuse(refused)
            return
        except TimeoutError:
            timeout = self.server.request_timeout
            self._refuse(Refused(HTTPStatus.REQUEST_TIMEOUT, f"the body took over {timeout:g} s"))
            return
        try:
            top = self.server.artifact.recommend(items, k=k, exclude=exclude)
            body = {"items": [{"item": token, "score": score} for token, score in top]}
        except ValueError as error:  # the model's refusals: unknown tokens, k too large
            self._refuse(Refused(HTTPStatus.BAD_REQUEST, str(error)))
            return
        except Exception:
            log.exception("recommend(%r, k=%d, exclude=%r) failed", items[:20], k, exclude[:20])
            message = "internal error; the server's log has the details"
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": message})
            return
        self._reply(HTTPStatus.OK, body)

    do_POST = do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer


class Server(ThreadingHTTPServer):
    """A thread per connection; ``artifact``, ``max_body`` (bytes) and ``request_timeout``
    (seconds) are read by every request."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], artifact, max_body: int, request_timeout: float):
        self.artifact, self.max_body, self.request_timeout = artifact, max_body, request_timeout
        super().__init__(address, Handler)

    def handle_error(self, request, client_address) -> None:
        """A connection that failed outside a request's answer: logged, not printed."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # the client went away mid-reply
            log.info("%s: connection lost: %s", client_address[0], error)
        else:
            log.exception("%s: connection failed", client_address[0])


def make_server(
    artifact,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_body: int = MAX_BODY,
    timeout: float = TIMEOUT,
) -> Server:
    """A server (bound, not yet serving: call ``serve_forever``) answering with ``artifact``
    (an ``Artifact``, or anything with its ``recommend``). ``port`` 0 picks a free port
    (``server.server_address``); ``max_body``: the largest body in bytes; ``timeout``: seconds
    for a whole body and for each read or write of a connection."""
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise ValueError(f"max_body={max_body!r}; allowed: a positive number of bytes")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < inf:
        raise ValueError(f"timeout={timeout!r}; allowed: a positive number of seconds")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port={port!r}; allowed: 0 to 65535")
    return Server((host, port), artifact, max_body, float(timeout))


def _number(kind, low, high, allowed: str):
    """An argparse type: ``kind`` within [low, high]."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:  # NaN fails the comparison
            raise argparse.ArgumentTypeError(f"{text!r}; allowed: {allowed}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    """``python -m recbole_sasrec.inference.http model_dir/ [--host] [--port] [--threads]
    [--max-body] [--timeout]``: serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m recbole_sasrec.inference.http", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model_dir", help="a folder written by `python -m recbole_sasrec export`")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine)")
    port = _number(int, 0, 65535, "0 to 65535")
    parser.add_argument("--port", type=port, default=8000, help="default: 8000; 0: any free port")
    parser.add_argument(
        "--threads",
        type=_number(int, 1, inf, "a positive integer"),
        default=1,
        help="ONNX Runtime threads (default 1: requests already run in parallel threads)",
    )
    parser.add_argument(
        "--max-body",
        type=_number(int, 1, inf, "a positive number of bytes"),
        default=MAX_BODY,
        help=f"the largest request body in bytes (default {MAX_BODY})",
    )
    parser.add_argument(
        "--timeout",
        type=_number(float, 1e-3, 1e6, "seconds, 0.001 to 1e6"),
        default=TIMEOUT,
        help=f"seconds for a whole body and each read or write (default {TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        artifact = Artifact.load(args.model_dir, threads=args.threads)
        server = make_server(artifact, args.host, args.port, args.max_body, args.timeout)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the address is taken or not ours
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    log.info("serving %s on http://%s:%d/", args.model_dir, host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
