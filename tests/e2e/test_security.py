"""Gaps the security audit (docs/security.md) found, each closed with a
test that failed first.

- OWASP API8 (security misconfiguration): answers could be sniffed as
  another content type and framed by another site (clickjacking of the
  docs and the dashboard): every answer now carries
  `X-Content-Type-Options: nosniff` and `X-Frame-Options: DENY`.
- RFC 9700 4.2.4 (credential leakage via Referer): the sign-in callback's
  URL carries the authorization code and state; its answer now carries
  `Referrer-Policy: no-referrer`, so the page it leads to does not pass
  them on.
"""
import pytest

from auth_helpers import Browser, provider  # noqa: F401


@pytest.mark.parametrize("method,path", [
    ("GET", "/health"), ("GET", "/docs"), ("GET", "/openapi.json"),
    ("GET", "/no/such/path"),            # a problem
    ("GET", "/api/v1/me"),               # 401
    ("DELETE", "/health"),               # 405
    ("GET", "/metrics"),
])
def test_every_answer_refuses_sniffing_and_framing(server, method, path):
    r = server.request(method, path)
    assert r.header("X-Content-Type-Options") == "nosniff", (path, r.headers)
    assert r.header("X-Frame-Options") == "DENY", (path, r.headers)


def test_callback_answer_keeps_the_code_out_of_referers(server_factory, provider):  # noqa: F811
    server = server_factory(**provider.env())
    provider.next_claims = {"email": "referer@gmail.com"}
    for accept in (None, "text/html"):
        r = Browser(server).sign_in(accept=accept)
        assert r.status in (200, 302), r.body
        assert r.header("Referrer-Policy") == "no-referrer", r.headers
    # a refused callback too: its URL carried the code all the same
    r = server.get("/auth/google/callback?code=abc&state=def")
    assert r.status == 401
    assert r.header("Referrer-Policy") == "no-referrer"
