"""The dashboard as HTTP (issue 16): GET / and /assets/* - security headers,
caching (ETag, 304, immutable), gzip, the JavaScript budget - and one-time
sign-in links: `nexusapi login-link` with an external and the embedded
database, single use, expiry, the cookie, the narrow rights on the table.
The browser itself is tests/e2e/test_dashboard.py."""
import concurrent.futures
import gzip
import os
import re
import subprocess
import tempfile
import urllib.parse

import pytest

import harness
from auth_helpers import cookies_of, make_org, make_user

JS_BUDGET_GZ = 150 * 1024


def assets_of(html):
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)


def link_for(db, email, *extra, env=None):
    r = db.cli("login-link", email, *extra, env=env or {})
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip()
    assert "\n" not in url
    return url


def token_of(url):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]


@pytest.fixture
def admin(db):
    org = make_org(db, "Acme", "acme.test")
    return {"org": org, "user": make_user(db, org, "ada@acme.test", "admin")}


# ---- the page and its assets ---------------------------------------------------

def test_page_has_strict_security_headers_and_no_cache(server):
    r = server.get("/")
    assert r.status == 200, r.body
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    csp = r.header("Content-Security-Policy")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["connect-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("Referrer-Policy") == "same-origin"
    assert r.header("Cache-Control") == "no-cache"
    html = r.body.decode()
    # no inline script or style, nothing from another origin
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), html
    assert "<style" not in html and "style=" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html), html
    assert assets_of(html)


def test_assets_are_immutable_with_etags_and_304(server):
    html = server.get("/").body.decode()
    for path in assets_of(html):
        r = server.get(path)
        assert r.status == 200, (path, r.body)
        assert r.header("Cache-Control") == "public, max-age=31536000, immutable"
        etag = r.header("ETag")
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag), etag
        assert r.header("Content-Security-Policy") and r.header("X-Content-Type-Options") == "nosniff"
        again = server.get(path, headers={"If-None-Match": etag})
        assert again.status == 304 and again.body == b""
        assert again.header("ETag") == etag
        assert server.get(path, headers={"If-None-Match": f'W/{etag}, "x"'}).status == 304
        assert server.get(path, headers={"If-None-Match": '"other"'}).status == 200
    page = server.get("/")
    assert server.get("/", headers={"If-None-Match": page.header("ETag")}).status == 304


def test_gzip_when_accepted_and_identity_otherwise(server):
    html = server.get("/").body.decode()
    js = [p for p in assets_of(html) if p.endswith(".js")]
    assert js
    for path in js:
        plain = server.get(path)
        assert plain.header("Content-Encoding") is None
        assert plain.header("Vary") == "Accept-Encoding"
        assert plain.header("Content-Type") == "text/javascript; charset=utf-8"
        z = server.get(path, headers={"Accept-Encoding": "br, gzip;q=0.8"})
        assert z.header("Content-Encoding") == "gzip", z.headers
        assert gzip.decompress(z.body) == plain.body
        assert z.header("ETag") != plain.header("ETag")
        refused = server.get(path, headers={"Accept-Encoding": "gzip;q=0, deflate"})
        assert refused.header("Content-Encoding") is None


def test_javascript_fits_the_budget(server):
    html = server.get("/").body.decode()
    total = 0
    for path in assets_of(html):
        if path.endswith(".js"):
            r = server.get(path, headers={"Accept-Encoding": "gzip"})
            assert r.header("Content-Encoding") == "gzip"
            total += len(r.body)
    assert 0 < total <= JS_BUDGET_GZ, f"{total} bytes of gzipped JavaScript"


def test_unknown_assets_are_404_problems(server):
    for path in ("/assets/nope.js", "/assets/index.html", "/assets/..%2Findex.html",
                 "/assets/" + "a" * 300):
        r = server.get(path)
        assert r.status == 404, path
        assert r.header("Content-Type") == "application/problem+json"
    html = server.get("/").body.decode()
    js = [p for p in assets_of(html) if p.endswith(".js")][0]
    assert server.get(js + ".gz").status == 404  # the gzip copy is not a file of its own
    assert server.request("POST", "/").status == 405


# ---- login links ---------------------------------------------------------------

def test_login_link_signs_in_once(db, server, admin):
    url = link_for(db, "ADA@acme.test")
    assert url.startswith("http://127.0.0.1/auth/link?token=")
    token = token_of(url)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    # only the hash is stored
    stored = db.sql("SELECT token_sha256 FROM login_links")
    assert token not in stored and len(stored) == 64
    r = server.get("/auth/link?token=" + token)
    assert r.status == 302 and r.header("Location") == "/"
    assert r.header("Cache-Control") == "no-store" and r.header("Referrer-Policy") == "no-referrer"
    value, attrs = cookies_of(r)["nexus_session"]
    assert "HttpOnly" in attrs and "SameSite=Lax" in attrs and "Path=/" in attrs
    me = server.get("/api/v1/me", headers={"Cookie": f"nexus_session={value}"})
    assert me.status == 200 and me.json()["user"]["id"] == admin["user"]
    assert me.json()["user"]["role"] == "admin"
    # a second use is refused, as JSON for an API client and as a page for a browser
    again = server.get("/auth/link?token=" + token)
    assert again.status == 401 and "already used" in again.json()["detail"]
    assert "nexus_session" not in cookies_of(again)
    page = server.get("/auth/link?token=" + token, headers={"Accept": "text/html"})
    assert page.status == 302 and page.header("Location") == "/?link=used"


def test_login_link_expired_unknown_and_malformed(db, server, admin):
    token = token_of(link_for(db, "ada@acme.test", "--minutes", "1"))
    db.sql("UPDATE login_links SET expires_at = now() - interval '1 second'")
    r = server.get("/auth/link?token=" + token)
    assert r.status == 401 and "expired" in r.json()["detail"]
    assert server.get("/auth/link?token=" + token,
                      headers={"Accept": "text/html"}).header("Location") == "/?link=expired"
    for q in ("", "?token=", "?token=" + "A" * 43, "?token=" + "A" * 44, "?token=%00" + "A" * 42,
              "?token=" + "A" * 42 + "%2F"):
        r = server.get("/auth/link" + q)
        assert r.status == 401, q
        assert "not valid" in r.json()["detail"]
        assert "nexus_session" not in cookies_of(r)


def test_login_link_follows_the_users_current_role_and_removal(db, server, admin):
    member = make_user(db, admin["org"], "bob@acme.test")
    t1 = token_of(link_for(db, "bob@acme.test"))
    db.sql(f"UPDATE users SET role = 'admin' WHERE id = '{member}'")
    r = server.get("/auth/link?token=" + t1)
    value = cookies_of(r)["nexus_session"][0]
    me = server.get("/api/v1/me", headers={"Cookie": f"nexus_session={value}"})
    assert me.json()["user"]["role"] == "admin"
    t2 = token_of(link_for(db, "bob@acme.test"))
    db.sql(f"DELETE FROM users WHERE id = '{member}'")  # its links go with it
    assert server.get("/auth/link?token=" + t2).status == 401


def test_login_link_is_spent_once_under_concurrency(db, server, admin):
    token = token_of(link_for(db, "ada@acme.test"))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: server.get("/auth/link?token=" + token), range(8)))
    assert sorted(a.status for a in answers) == [302] + [401] * 7


def test_login_link_cookie_is_host_prefixed_over_https(db, server_factory, admin):
    s = server_factory(PUBLIC_URL="https://nexus.example")
    url = link_for(db, "ada@acme.test", env={"PUBLIC_URL": "https://nexus.example/"})
    assert url.startswith("https://nexus.example/auth/link?token=")
    r = s.get("/auth/link?token=" + token_of(url))
    c = cookies_of(r)
    assert "nexus_session" not in c
    value, attrs = c["__Host-nexus_session"]
    assert "Secure" in attrs and "Path=/" in attrs and "Domain" not in attrs


def test_login_link_cli_refuses_bad_input(db, admin):
    make_org(db, "Other", "other.test")
    cases = [
        ((), 2, "EMAIL is required"),
        (("ada@acme.test", "--minutes", "0"), 2, "--minutes must be an integer from 1 to 1440"),
        (("ada@acme.test", "--minutes", "1441"), 2, "--minutes"),
        (("ada@acme.test", "--minutes"), 2, "--minutes needs a value"),
        (("ada@acme.test", "extra"), 2, 'unexpected argument "extra"'),
        (("nobody@acme.test",), 1, 'no user "nobody@acme.test"'),
        (("ada@acme.test", "--org", "other.test"), 1, 'no user "ada@acme.test" in organisation'),
    ]
    for args, status, message in cases:
        r = db.cli("login-link", *args)
        assert r.returncode == status, (args, r.stderr)
        assert message in r.stderr and r.stdout == "", (args, r.stderr)
    assert db.sql("SELECT count(*) FROM login_links") == "0"


def test_login_link_email_in_two_organisations_needs_org(db, server, admin):
    other = make_org(db, "Other", "other.test")
    make_user(db, other, "ada@acme.test")
    r = db.cli("login-link", "ada@acme.test")
    assert r.returncode == 2 and "--org" in r.stderr
    url = link_for(db, "ada@acme.test", "--org", "other.test")
    value = cookies_of(server.get("/auth/link?token=" + token_of(url)))["nexus_session"][0]
    me = server.get("/api/v1/me", headers={"Cookie": f"nexus_session={value}"})
    assert me.json()["organisation"]["id"] == other


def test_login_links_table_is_closed_to_the_runtime_roles(db, admin):
    link_for(db, "ada@acme.test")
    for role in ("nexus_app", "nexus_worker"):
        for sql in ("SELECT * FROM login_links", "DELETE FROM login_links",
                    "UPDATE login_links SET used_at = NULL",
                    f"INSERT INTO login_links VALUES ('{admin['org']}', repeat('a', 64), "
                    f"'{admin['user']}', now() + interval '1 day')"):
            r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                "-d", db.url], input=f"SET ROLE {role};\n{sql};",
                               capture_output=True, text=True, timeout=30)
            assert r.returncode != 0 and "permission denied" in r.stderr, (role, sql, r.stderr)
    # the door: nexus_app may spend a link (unknown here), nothing more
    out = db.sql("SET ROLE nexus_app; SELECT status FROM nx_login_link_consume(repeat('b', 64))")
    assert out == "unknown"
    assert db.sql("SELECT relrowsecurity AND relforcerowsecurity FROM pg_class "
                  "WHERE relname = 'login_links'") == "t"


def test_login_link_with_the_embedded_database(tmp_path):
    data = tmp_path / "data"
    env = harness.base_env(NEXUS_DATA_DIR=str(data), DATABASE_URL=None,
                           PUBLIC_URL="http://127.0.0.1:1")
    srv = harness.Server(env)
    try:
        for args in (("org", "create", "--name", "Acme", "--domain", "acme.test"),
                     ("user", "add", "ada@acme.test", "--org", "acme.test", "--role", "admin")):
            r = harness.run_cli(args, env, timeout=120)
            assert r.returncode == 0, r.stderr
        r = harness.run_cli(("login-link", "ada@acme.test"), env, timeout=120)
        assert r.returncode == 0, r.stderr
        token = token_of(r.stdout.strip())
        got = srv.get("/auth/link?token=" + token)
        assert got.status == 302, got.body
        value = cookies_of(got)["nexus_session"][0]
        assert srv.get("/api/v1/me", headers={"Cookie": f"nexus_session={value}"}).status == 200
    finally:
        assert srv.close() == 0
