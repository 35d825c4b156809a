"""The HTTP skeleton through the real binary: routing (404, 405 + Allow, the
trailing-slash and case rule), problem details with request ids, X-Request-ID
handling, body limits, and the access log."""
import json
import re
import socket
import time

import pytest

import harness

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# A public route taking a JSON object body; the body tests run against it
# once the auth module adds it.
JSON_ROUTE = "/auth/google/token"


def assert_problem(r, status, slug):
    assert r.status == status, r.body
    assert r.header("Content-Type") == "application/problem+json"
    p = r.json()
    assert p["type"] == f"/problems/{slug}"
    assert p["status"] == status
    assert p["title"] and p["detail"]
    assert p["request_id"] == r.header("X-Request-ID")
    return p


def raw_exchange(port, data, timeout=10):
    """Sends raw bytes; returns everything read until the server closes or
    one full response (by Content-Length) arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_response(s)


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    need = int(m.group(1)) if m else 0
    while len(body) < need:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def parse_raw(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
    return harness.Response(status, headers, body)


def test_unknown_path_is_404_problem(server):
    r = server.get("/no/such/path")
    p = assert_problem(r, 404, "not-found")
    assert UUID_RE.match(p["request_id"])
    # Never internals: no file paths or SQL.
    assert "/work" not in r.body.decode() and "SELECT" not in r.body.decode()


def test_known_path_other_method_is_405_with_allow(server):
    for method in ("POST", "DELETE", "PUT", "PATCH"):
        r = server.request(method, "/health")
        assert_problem(r, 405, "method-not-allowed")
        assert r.header("Allow") == "GET, HEAD"
    r = server.request("DELETE", "/docs/swagger-ui.css")
    assert_problem(r, 405, "method-not-allowed")
    assert r.header("Allow") == "GET, HEAD"


def test_paths_are_exact_no_trailing_slash_case_sensitive(server):
    assert server.get("/health").status == 200
    for path in ("/health/", "/Health", "/HEALTH", "//health", "/health//", "/docs/"):
        assert_problem(server.get(path), 404, "not-found")


def test_head_is_get_without_body(server):
    conn = __import__("http.client").client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("HEAD", "/health")
        r = conn.getresponse()
        assert r.status == 200
        assert r.read() == b""
        assert r.getheader("X-Request-ID")
    finally:
        conn.close()


def test_client_request_id_echoed(server):
    rid = "client-req_42.abc~XYZ"
    r = server.get("/health", headers={"X-Request-ID": rid})
    assert r.status == 200
    assert r.header("X-Request-ID") == rid
    r = server.get("/nope", headers={"X-Request-ID": rid})
    assert assert_problem(r, 404, "not-found")["request_id"] == rid
    longest = "r" * 128
    assert server.get("/health", headers={"X-Request-ID": longest}).header("X-Request-ID") == longest


@pytest.mark.parametrize("bad", [
    "x" * 10 * 1024,          # 10 KB
    "r" * 129,                # one past the limit
    "has space",
    "caf\u00e9-\u65e5\u672c",  # non-ASCII (sent as UTF-8 bytes)
])
def test_insane_request_id_replaced(server, bad):
    req = (b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-ID: "
           + bad.encode("utf-8") + b"\r\n\r\n")
    r = parse_raw(raw_exchange(server.port, req))
    assert r.status == 404
    rid = r.header("X-Request-ID")
    assert UUID_RE.match(rid), rid
    assert r.json()["request_id"] == rid


def test_every_response_has_a_fresh_request_id(server):
    ids = {server.get("/health").header("X-Request-ID") for _ in range(20)}
    assert len(ids) == 20 and all(UUID_RE.match(i) for i in ids)


def test_access_log_line_per_request(server):
    server.get("/health", headers={"X-Request-ID": "log-check-1"})
    server.get("/nope", headers={"X-Request-ID": "log-check-2"})
    server.request("POST", "/health", headers={"X-Request-ID": "log-check-3"})
    deadline = time.time() + 5
    while time.time() < deadline:
        lines = {l.get("request_id"): l for l in server.log_lines() if l.get("msg") == "request"}
        if {"log-check-1", "log-check-2", "log-check-3"} <= set(lines):
            break
        time.sleep(0.05)
    ok, missing, wrong = lines["log-check-1"], lines["log-check-2"], lines["log-check-3"]
    for line in (ok, missing, wrong):
        assert {"time", "level", "request_id", "method", "route", "status", "duration_ms"} <= set(line)
        assert line["duration_ms"] >= 0
        assert "org_id" not in line and "user_id" not in line  # public routes
    assert (ok["method"], ok["route"], ok["status"], ok["level"]) == ("GET", "/health", 200, "info")
    assert (missing["route"], missing["status"]) == (None, 404)
    assert (wrong["method"], wrong["status"]) == ("POST", 405)
    # One line per request, not more.
    assert sum(1 for l in server.log_lines() if l.get("request_id") == "log-check-1") == 1


def test_body_over_limit_refused_before_reading(server):
    """A declared 2 MiB body is refused with 413 from the headers alone: the
    response arrives while we have sent only the first 64 KiB."""
    size = 2 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(size).encode() + b"\r\n\r\n" + b"{" * 65536)
        r = parse_raw(read_response(s))
    assert_problem(r, 413, "payload-too-large")
    # any route may answer it, so every operation documents it
    doc = server.get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and "responses" in op:
                assert "413" in op["responses"], (method, path)


def _chunked_over_limit(server, rid, mib, finish):
    """Sends a chunked body of mib MiB (ending it when finish) and returns
    what came back, b"" when the server closed the connection."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"X-Request-ID: " + rid.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % 65536 + b"a" * 65536 + b"\r\n"
    try:
        for _ in range(16 * mib):
            s.sendall(chunk)
        if finish:
            s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.settimeout(5)
    try:
        return s, read_response(s)
    except (ConnectionResetError, ConnectionError):
        return s, b""


def _access_line(server, rid):
    deadline = time.time() + 5
    while time.time() < deadline:
        line = [l for l in server.log_lines() if l.get("request_id") == rid and l.get("msg") == "request"]
        if line:
            return line[0]
        time.sleep(0.05)
    raise AssertionError(server.log()[-2000:])


def test_chunked_body_over_limit_is_413_once_sent(server):
    """Without a Content-Length the server counts: past 1 MiB it keeps
    nothing more, reads the rest, and answers 413 once the request is
    complete (libmicrohttpd cannot answer in the middle of a body). The
    connection stays usable."""
    s, got = _chunked_over_limit(server, "chunked-over-limit", 2, finish=True)
    with s:
        assert got, "the connection was closed instead of answered"
        p = assert_problem(parse_raw(got), 413, "payload-too-large")
        assert p["request_id"] == "chunked-over-limit"
        assert "1048576 bytes" in p["detail"]
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert parse_raw(read_response(s)).status == 200
    assert _access_line(server, "chunked-over-limit")["status"] == 413


def test_chunked_body_far_over_limit_is_cut_off(server):
    """A chunked body that goes on past 8 MiB is not read to its end: the
    connection is closed (logged as 413) and the server serves on."""
    s, got = _chunked_over_limit(server, "chunked-far-over", 12, finish=False)
    s.close()
    assert got == b""
    assert _access_line(server, "chunked-far-over")["status"] == 413
    assert server.get("/health").status == 200


def json_route_exists(server):
    doc = server.get("/openapi.json").json()
    return JSON_ROUTE in doc["paths"] and "post" in doc["paths"][JSON_ROUTE]


@pytest.fixture
def json_server(server):
    if not json_route_exists(server):
        pytest.skip(f"POST {JSON_ROUTE} (the first public JSON route) does not exist yet")
    return server


@pytest.mark.parametrize("body,words", [
    (b'{"id_token": ', "not valid JSON"),
    (b"{'id_token': 'x'}", "not valid JSON"),
    (b'{"id_token": 1, \xff\xfe: 2}', "UTF-8"),
    (b'["id_token"]', "JSON object"),
    (b'"id_token"', "JSON object"),
    (b'{"id_token": "a", "id_token": "b"}', "repeats a key"),
    (b"", "required"),
])
def test_bad_json_body_is_400(json_server, body, words):
    r = json_server.request("POST", JSON_ROUTE, body=body,
                            headers={"Content-Type": "application/json"})
    p = assert_problem(r, 400, "bad-request")
    assert words in p["detail"]


@pytest.mark.parametrize("body", [b'{"id_token": "\xff\xfe"}', b'{"id_token": "\\ud800"}',
                                  b'{"id_token": ["ok", {"deep": "\xc3\x28"}]}'])
def test_invalid_utf8_inside_a_value_is_422_naming_the_field(json_server, body):
    r = json_server.request("POST", JSON_ROUTE, body=body,
                            headers={"Content-Type": "application/json"})
    p = assert_problem(r, 422, "validation-error")
    assert p["errors"] == [{"field": "id_token", "message": "must be valid UTF-8 text"}]


@pytest.mark.parametrize("body", [b'{"id_token": "a\\u0000b"}',
                                  b'{"id_token": ["ok", {"deep": "\\u0000"}]}'])
def test_nul_character_inside_a_value_is_422_naming_the_field(json_server, body):
    r = json_server.request("POST", JSON_ROUTE, body=body,
                            headers={"Content-Type": "application/json"})
    p = assert_problem(r, 422, "validation-error")
    assert p["errors"] == [{"field": "id_token",
                            "message": "must not contain the NUL character (\\u0000)"}]


@pytest.mark.parametrize("char", ["\u00e9", "\u20ac", "\U0001F600"])
@pytest.mark.parametrize("pad", range(4))
def test_issue11_long_non_ascii_key_is_cut_on_a_character(json_server, char, pad):
    """A 422 names the member; a long key is cut to fit, and never inside a
    character: the response is valid UTF-8 (before, a 2-, 3- or 4-byte
    character straddling the cut left its first bytes in the body)."""
    key = "k" * pad + char * 40
    body = b'{"' + key.encode() + b'": "\xff"}'
    r = json_server.request("POST", JSON_ROUTE, body=body,
                            headers={"Content-Type": "application/json"})
    assert r.status == 422, r.body
    text = r.body.decode("utf-8")  # strict: raises on invalid UTF-8
    field = json.loads(text)["errors"][0]["field"]
    assert key.startswith(field)
    assert 63 - len(char.encode()) < len(field.encode()) <= 63


def test_nul_character_in_a_key_is_400_saying_so(json_server):
    r = json_server.request("POST", JSON_ROUTE, body=b'{"a\\u0000": "x"}',
                            headers={"Content-Type": "application/json"})
    assert "NUL character" in assert_problem(r, 400, "bad-request")["detail"]


def test_surrogate_pair_escape_is_valid_text(json_server):
    r = json_server.request("POST", JSON_ROUTE, body=b'{"id_token": "\\ud83d\\ude00"}',
                            headers={"Content-Type": "application/json"})
    assert r.status != 422 and r.status != 400


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "application/json; charset=latin1", None])
def test_wrong_content_type_is_415(json_server, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    r = json_server.request("POST", JSON_ROUTE, body=b'{"id_token": "x"}', headers=headers)
    assert_problem(r, 415, "unsupported-media-type")


def test_json_route_body_over_limit_is_413(json_server):
    body = json.dumps({"id_token": "x" * (2 * 1024 * 1024)}).encode()
    with socket.create_connection(("127.0.0.1", json_server.port), timeout=10) as s:
        s.sendall(b"POST " + JSON_ROUTE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\n\r\n" + body[:65536])
        r = parse_raw(read_response(s))
    assert_problem(r, 413, "payload-too-large")
