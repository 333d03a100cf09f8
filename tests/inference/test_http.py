"""The HTTP server: a JSON answer with the exact status for every malformed request, limits that
hold (body size, timeout), and a server that keeps answering after all of them."""

from __future__ import annotations

import http.client
import json
import logging
import select
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest
from conftest import free_port, log_lines, train_converted

from recbole_sasrec import export
from recbole_sasrec.inference import http as served
from recbole_sasrec.inference.artifact import Artifact

GOOD = b'{"items": ["5", "6"], "k": 3, "exclude": ["8"]}'


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An exported folder of a small SASRec trained on a converted log (items "1" to "30")."""
    root = tmp_path_factory.mktemp("http")
    log = log_lines(n_users=40, n_items=30, step=7, length=(8, 9))
    model_file = train_converted(root, log, "data", "toy", epochs=1, MAX_ITEM_LIST_LENGTH=6)
    return export(model_file["model_file"], root / "artifact")


@pytest.fixture(scope="module")
def artifact(folder):
    return Artifact.load(folder, threads=1)


class Spy:
    """The artifact, with its calls recorded; the session ["crash"] raises as a broken model
    would."""

    def __init__(self, artifact):
        self.artifact, self.calls = artifact, []

    def recommend(self, session, k=10, exclude=()):
        self.calls.append((session, k, exclude))
        if session == ["crash"]:
            raise RuntimeError("the model broke")
        return self.artifact.recommend(session, k=k, exclude=exclude)


@pytest.fixture
def serve(artifact):
    """serve(max_body=..., timeout=...) -> a server answering in a thread, with a Spy."""
    servers = []

    def start(**limits):
        server = served.make_server(Spy(artifact), port=0, **limits)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(serve):
    return serve(timeout=0.5)


def send(server, data: bytes, then=None):
    """Raw bytes in -> (status, headers, body as JSON, whether the server then closed)."""
    with socket.create_connection(server.server_address, timeout=5) as s:
        s.sendall(data)
        if then:
            then(s)
        response = http.client.HTTPResponse(s)
        response.begin()
        body = json.loads(response.read())
        s.settimeout(0.1)  # under the server's timeout, which ends an idle connection
        try:
            closed = s.recv(1) == b""
        except TimeoutError:
            closed = False
        except ConnectionResetError:  # closed with our unread body in its buffer
            closed = True
        return response.status, response.headers, body, closed


def post(body: bytes, **headers) -> bytes:
    lines = ["POST / HTTP/1.1", "Host: x", f"Content-Length: {len(body)}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def assert_still_serving(server, artifact):
    status, _, body, _ = send(server, post(GOOD))
    expected = artifact.recommend(["5", "6"], k=3, exclude=["8"])
    assert status == 200
    assert body == {"items": [{"item": t, "score": s} for t, s in expected]}


def test_a_good_request_gets_the_artifacts_recommendations(server, artifact):
    assert_still_serving(server, artifact)
    assert server.artifact.calls == [(["5", "6"], 3, ["8"])]
    status, _, body, _ = send(server, post(b'{"items": ["5"]}'))
    assert status == 200 and len(body["items"]) == 10  # k defaults to 10


BAD_BODIES = {
    "invalid JSON": (b'{"items": ["5"', "the body is not JSON: Expecting"),
    "empty body": (b"", "the body is not JSON: Expecting value: line 1 column 1 (char 0)"),
    "not UTF-8": (b'{"items": ["\xff"]}', "the body is not JSON: 'utf-8' codec can't decode"),
    "nested deep": (b"[" * 100_000, "the body is not JSON: maximum recursion depth exceeded"),
    "not an object": (b'["5", "6"]', "the body is a JSON list; allowed: an object"),
    "missing items": (b'{"k": 3}', 'missing "items": the session\'s item tokens'),
    "unknown key": (b'{"items": ["5"], "K": 3}', "unknown keys 'K'; allowed: items, k, exclude"),
    "items a string": (b'{"items": "56"}', "\"items\" is str '56'; allowed: a list of item"),
    "items a number": (b'{"items": 5}', '"items" is int 5; allowed: a list of item tokens'),
    "items of numbers": (b'{"items": ["5", 6]}', '"items"[1] is int 6; allowed: an item token'),
    "exclude a string": (
        b'{"items": ["5"], "exclude": "78"}',
        "\"exclude\" is str '78'; allowed: a list of item tokens",
    ),
    "k zero": (b'{"items": ["5"], "k": 0}', '"k" is 0; allowed: a positive integer'),
    "k negative": (b'{"items": ["5"], "k": -3}', '"k" is -3; allowed: a positive integer'),
    "k a float": (b'{"items": ["5"], "k": 2.5}', '"k" is 2.5; allowed: a positive integer'),
    "k a string": (b'{"items": ["5"], "k": "3"}', '"k" is "3"; allowed: a positive integer'),
    "k a bool": (b'{"items": ["5"], "k": true}', '"k" is true; allowed: a positive integer'),
    "k null": (b'{"items": ["5"], "k": null}', '"k" is null; allowed: a positive integer'),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_malformed_body_gets_400_naming_it_and_never_reaches_the_model(server, artifact, case):
    data, message = BAD_BODIES[case]
    status, headers, body, closed = send(server, post(data))
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert body["error"].startswith(message)
    assert server.artifact.calls == [] and not closed  # the body was read: kept alive
    assert_still_serving(server, artifact)


MODEL_REFUSALS = {  # what Artifact.recommend refuses; the reply is its own message
    "unknown tokens": {"items": ["5", "x9"], "exclude": ["y"]},
    "no items": {"items": []},
    "k above the catalogue": {"items": ["5"], "k": 30},
}


@pytest.mark.parametrize("case", MODEL_REFUSALS)
def test_what_the_artifact_refuses_gets_400_with_its_message(server, artifact, case):
    request = MODEL_REFUSALS[case]
    with pytest.raises(ValueError) as refused:
        artifact.recommend(request["items"], request.get("k", 10), request.get("exclude", []))
    status, _, body, _ = send(server, post(json.dumps(request).encode()))
    assert (status, body) == (400, {"error": str(refused.value)})
    assert_still_serving(server, artifact)


def head(content_length: str | None = None, *extra: str) -> bytes:
    lines = ["POST / HTTP/1.1", "Host: x", *extra]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


BAD_HEADERS = {
    "no Content-Length": (head(), 411, "no Content-Length: the body's size in bytes"),
    "Content-Length -1": (head("-1"), 400, "Content-Length '-1'; allowed: one number of bytes"),
    "Content-Length abc": (
        head("abc") + b"{}",
        400,
        "Content-Length 'abc'; allowed: one number of bytes",
    ),
    "Content-Length +2": (head("+2") + b"{}", 400, "Content-Length '+2'; allowed: one number"),
    "two Content-Lengths": (
        head("2", "Content-Length: 3") + b"{}",
        400,
        "Content-Length '3, 2'; allowed: one number of bytes",
    ),
    "chunked": (
        head(None, "Transfer-Encoding: chunked") + b'5\r\n{"ite\r\n0\r\n\r\n',
        411,
        "Transfer-Encoding 'chunked' is not accepted; send the body with a Content-Length",
    ),
    "chunked and a length": (
        head("5", "Transfer-Encoding: chunked") + b'5\r\n{"ite\r\n0\r\n\r\n',
        411,
        "Transfer-Encoding 'chunked' is not accepted",
    ),
    "5000 digits": (
        head("9" * 5000),
        413,
        f"Content-Length {'9' * 40} is above the server's limit of 1048576 bytes",
    ),
    "100 GB": (
        head("100000000000"),
        413,
        "Content-Length 100000000000 is above the server's limit of 1048576 bytes",
    ),
}


@pytest.mark.parametrize("case", BAD_HEADERS)
def test_a_body_without_a_usable_length_is_refused_unread(server, artifact, case):
    data, code, message = BAD_HEADERS[case]
    status, _, body, closed = send(server, data)
    assert status == code and body["error"].startswith(message)
    assert closed == (case != "no Content-Length")  # any body left unread ends the connection
    assert server.artifact.calls == []
    assert_still_serving(server, artifact)


def test_a_huge_content_length_is_refused_at_once_without_reading_or_allocating(serve):
    server = serve()  # the default limits: 1 MiB, 10 s
    tracemalloc.start()
    try:
        start = time.perf_counter()
        # 21 MB announced, 64 KiB sent: the answer comes without the server waiting for more
        status, headers, body, closed = send(server, head(str(21 << 20)) + b"[" * (1 << 16))
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (status, headers["Connection"], closed) == (413, "close", True)
    assert body == {"error": "Content-Length 22020096 is above the server's limit of 1048576 bytes"}
    assert elapsed < 2 and peak < 4 << 20  # well under the 10 s timeout and the 21 MB


def test_the_body_limit_is_max_body_bytes(serve, artifact):
    server = serve(max_body=len(GOOD))
    assert send(server, post(GOOD))[0] == 200
    status, _, body, _ = send(server, post(GOOD + b" "))
    assert (status, body) == (
        413,
        {
            "error": f"Content-Length {len(GOOD) + 1} is above the server's limit of {len(GOOD)} bytes"
        },
    )


def test_expect_100_continue_is_refused_or_continued_before_the_body(server):
    with socket.create_connection(server.server_address, timeout=5) as s:
        s.sendall(head("100000000000", "Expect: 100-continue"))
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in reply
    with socket.create_connection(server.server_address, timeout=5) as s:
        s.sendall(head(str(len(GOOD)), "Expect: 100-continue"))
        assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(GOOD)
        assert s.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_body_shorter_than_its_length_times_out_and_closes(server, artifact):
    start = time.perf_counter()
    status, headers, body, closed = send(server, head("100") + b'{"items": ["5"]}')
    assert time.perf_counter() - start >= 0.5  # the server's timeout, not an early guess
    assert (status, body, closed) == (408, {"error": "the body took over 0.5 s"}, True)
    assert headers["Connection"] == "close"
    assert_still_serving(server, artifact)


def test_the_timeout_is_for_the_whole_body_not_each_byte(server):
    answered_mid_body = []

    def trickle(s):  # a byte every 0.1 s (2.5 s in all): each read is quick, the body is not
        for byte in b'{"items": ["5", "6", "7"], "k": 3}'[:25]:
            if select.select([s], [], [], 0.1)[0]:
                answered_mid_body.append(True)
                return
            s.sendall(bytes([byte]))

    status, _, body, closed = send(server, head("100"), then=trickle)
    assert (status, body, closed) == (408, {"error": "the body took over 0.5 s"}, True)
    assert answered_mid_body == [True]


def test_a_body_cut_short_by_the_client_gets_400(server):
    status, _, body, closed = send(
        server, head("100") + b"{}", then=lambda s: s.shutdown(socket.SHUT_WR)
    )
    assert (status, body, closed) == (
        400,
        {"error": "the body ended after 2 of its 100 bytes"},
        True,
    )


ROUTES = {
    "GET /": (b"GET / HTTP/1.1\r\n\r\n", 405, "GET /: allowed: POST", "POST"),
    "PUT /": (
        b"PUT / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        405,
        "PUT /: allowed: POST",
        "POST",
    ),
    "POST /health": (
        b"POST /health HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        405,
        "POST /health: allowed: GET, HEAD",
        "GET, HEAD",
    ),
    "GET /nope": (b"GET /nope?a=1 HTTP/1.1\r\n\r\n", 404, "no path '/nope'; allowed: POST /", None),
    "POST /x": (b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 404, "no path '/x'", None),
    "BREW /": (b"BREW / HTTP/1.1\r\n\r\n", 501, "Unsupported method ('BREW')", None),
    "garbage": (b"a b c HTTP/1.1\r\n\r\n", 400, "Bad request syntax ('a b c HTTP/1.1')", None),
    "HTTP/2": (b"GET / HTTP/2.0\r\n\r\n", 505, "Invalid HTTP version (2.0)", None),
}


@pytest.mark.parametrize("case", ROUTES)
def test_other_paths_and_methods_get_their_status_in_json(server, artifact, case):
    data, code, message, allow = ROUTES[case]
    status, headers, body, _ = send(server, data)
    assert status == code and body["error"].startswith(message)
    assert headers["Allow"] == allow
    assert_still_serving(server, artifact)


def test_health(server):
    assert send(server, b"GET /health HTTP/1.1\r\n\r\n")[:3:2] == (200, {"status": "ok"})
    with socket.create_connection(server.server_address, timeout=5) as s:
        s.sendall(b"HEAD /health HTTP/1.1\r\n\r\n")
        time.sleep(0.2)
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\n")  # no body


def test_a_model_failure_gets_500_is_logged_and_the_server_goes_on(server, artifact, caplog):
    with caplog.at_level(logging.INFO, logger="recbole_sasrec.http"):
        status, _, body, closed = send(server, post(b'{"items": ["crash"]}'))
    assert (status, body, closed) == (
        500,
        {"error": "internal error; the server's log has the details"},
        False,
    )
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.name == "recbole_sasrec.http"
    assert failure.getMessage() == "recommend(['crash'], k=10, exclude=[]) failed"
    assert str(failure.exc_info[1]) == "the model broke"
    assert_still_serving(server, artifact)


def test_requests_are_logged_through_logging_and_not_printed(server, artifact, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="recbole_sasrec.http"):
        assert_still_serving(server, artifact)
        send(server, b"GET /\x1b[31mred HTTP/1.1\r\n\r\n")
    messages = [r.getMessage() for r in caplog.records if r.name == "recbole_sasrec.http"]
    assert messages[0] == '127.0.0.1 "POST / HTTP/1.1" 200 -'
    assert messages[-1] == '127.0.0.1 "GET /\\x1b[31mred HTTP/1.1" 404 -'  # no terminal codes
    assert capfd.readouterr().err == ""


def test_a_connection_is_kept_alive_across_good_and_refused_requests(server):
    connection = http.client.HTTPConnection(*server.server_address, timeout=5)
    for data, code in ((GOOD, 200), (b"{oops", 400), (b'{"items": ["x"]}', 400), (GOOD, 200)):
        connection.request("POST", "/", body=data)
        response = connection.getresponse()
        assert (response.status, response.will_close) == (code, False)
        response.read()
    connection.close()


def test_make_server_refuses_bad_limits(artifact):
    with pytest.raises(ValueError, match=r"max_body=0; allowed: a positive number of bytes"):
        served.make_server(artifact, port=0, max_body=0)
    with pytest.raises(ValueError, match=r"max_body=True; allowed: a positive number of bytes"):
        served.make_server(artifact, port=0, max_body=True)
    with pytest.raises(ValueError, match=r"timeout=inf; allowed: a positive number of seconds"):
        served.make_server(artifact, port=0, timeout=float("inf"))
    with pytest.raises(ValueError, match=r"port=70000; allowed: 0 to 65535"):
        served.make_server(artifact, port=70000)


def test_main_refuses_bad_arguments_before_loading(tmp_path, capsys):
    with pytest.raises(ValueError) as refused:  # an empty folder: not an exported model
        Artifact.load(tmp_path)
    assert served.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {refused.value}\n"
    for bad in (
        ["--port", "70000"],
        ["--threads", "0"],
        ["--max-body", "-1"],
        ["--timeout", "nan"],
    ):
        with pytest.raises(SystemExit) as exit:
            served.main([str(tmp_path), *bad])
        assert exit.value.code == 2
        assert f"argument {bad[0]}: {bad[1]!r}; allowed: " in capsys.readouterr().err


def test_python_m_serves_an_exported_folder(folder, artifact):
    port = free_port()
    command = [sys.executable, "-m", "recbole_sasrec.inference.http", str(folder)]
    process = subprocess.Popen([*command, "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        assert f"serving {folder} on http://127.0.0.1:{port}/" in process.stderr.readline()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("POST", "/", body=b'{"items": ["5", "6"], "k": 3}')
        response = connection.getresponse()
        expected = artifact.recommend(["5", "6"], k=3)
        assert response.status == 200
        assert json.loads(response.read()) == {
            "items": [{"item": t, "score": s} for t, s in expected]
        }
        connection.close()
    finally:
        process.terminate()
        process.wait(10)
