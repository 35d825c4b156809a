"""Helpers for the sign-in and access tests: a browser walking the Google
redirect flow against the real server and the local OpenID provider, users
and tokens made through the operator verbs, and JWTs crafted by hand."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import time
import urllib.parse
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from oidc_provider import Provider  # noqa: E402


@pytest.fixture
def provider():
    p = Provider()
    yield p
    p.close()


def cookies_of(resp):
    """{name: (value, attributes)} from every Set-Cookie header."""
    out = {}
    for k, v in resp.headers:
        if k.lower() == "set-cookie":
            first, _, attrs = v.partition(";")
            name, _, value = first.strip().partition("=")
            out[name] = (value, attrs)
    return out


def provider_get(url):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("Location")
    finally:
        conn.close()


class Browser:
    """Walks GET /auth/google/login -> provider /authorize -> callback."""

    def __init__(self, server):
        self.server = server

    def login(self):
        r = self.server.get("/auth/google/login")
        assert r.status == 302, (r.status, r.body)
        c = cookies_of(r)
        assert "nexus_login" in c, r.headers
        return r.header("Location"), c["nexus_login"][0], c["nexus_login"][1]

    def authorize(self, auth_url):
        status, loc = provider_get(auth_url)
        assert status == 302, (status, loc)
        u = urllib.parse.urlsplit(loc)
        assert u.path == "/auth/google/callback", loc
        return u.path + "?" + u.query

    def callback(self, path, login_cookie, accept=None):
        h = {}
        if login_cookie is not None:
            h["Cookie"] = f"nexus_login={login_cookie}"
        if accept:
            h["Accept"] = accept
        return self.server.get(path, headers=h)

    def sign_in(self, accept=None):
        url, cookie, _ = self.login()
        return self.callback(self.authorize(url), cookie, accept=accept)


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header, claims, secret=harness.SECRET, digest=hashlib.sha256):
    """A JWS with exactly this header and these claims, HMAC'd with secret."""
    signing = b64u(json.dumps(header)) + "." + b64u(json.dumps(claims))
    sig = hmac.new(secret.encode(), signing.encode(), digest).digest()
    return signing + "." + b64u(sig)


def std_claims(user_id, org_id, role="member", /, **over):
    now = int(time.time())
    c = {"sub": user_id, "org_id": org_id, "role": role, "iat": now, "exp": now + 600,
         "iss": "nexusapi", "jti": str(uuid.uuid4())}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def make_org(db, name, domain=None):
    d = "NULL" if domain is None else f"'{domain}'"
    oid = db.sql(f"INSERT INTO organisations (name, domain) VALUES ('{name}', {d}) RETURNING id")
    db.sql(f"INSERT INTO org_credits (organisation_id, balance) VALUES ('{oid}', 0)")
    return oid.splitlines()[0]


def make_user(db, org_id, email, role="member", created_offset_s=0):
    return db.sql(
        "INSERT INTO users (organisation_id, email, name, role, created_at) VALUES "
        f"('{org_id}', '{email}', '{email.split('@')[0]}', '{role}', "
        f"now() + interval '{created_offset_s} seconds') RETURNING id").splitlines()[0]


def cli_token(db, email, *extra, env=None):
    r = db.cli("token", email, *extra, env=env or {})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()
