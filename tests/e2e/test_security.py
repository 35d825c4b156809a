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
- RFC 8725 3.9 / OpenID Connect Core 3.1.3.7 (audience): an ID token
  whose `aud` also names other clients, or whose `azp` names another
  client, was issued to someone else; it was accepted as long as our
  client id was among the audiences (POST /auth/google/token takes tokens
  an app obtained anywhere). Now `azp`, when present, must be our client
  id, and a token for several audiences must carry it.
"""
import pytest

from auth_helpers import Browser, provider  # noqa: F401
from oidc_provider import CLIENT_ID

OTHER = "other-client.apps.example"


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


@pytest.mark.parametrize("claims,why", [
    ({"aud": [CLIENT_ID, OTHER], "azp": OTHER}, "azp names another client"),
    ({"aud": [CLIENT_ID, OTHER], "azp": None}, "several audiences and no azp"),
    ({"azp": OTHER}, "azp names another client, aud ours"),
])
def test_id_token_issued_to_another_client_is_refused(server_factory, provider, db,  # noqa: F811
                                                      claims, why):
    server = server_factory(**provider.env())
    before = db.sql("SELECT count(*) FROM users")
    for flow in ("redirect", "token"):
        provider.next_claims = dict(claims, sub="g-azp", email="azp@gmail.com")
        if flow == "redirect":
            r = Browser(server).sign_in()
        else:
            tok = provider.id_token(sub="g-azp", email="azp@gmail.com", **claims)
            r = server.request("POST", "/auth/google/token", body={"id_token": tok})
        assert r.status == 401, (why, flow, r.status, r.body)
        assert "issued for another client" in r.json()["detail"], r.json()
    assert db.sql("SELECT count(*) FROM users") == before


def test_id_token_for_several_audiences_with_our_azp_is_accepted(server_factory,  # noqa: F811
                                                                 provider):
    server = server_factory(**provider.env())
    provider.next_claims = {"aud": [CLIENT_ID, OTHER], "azp": CLIENT_ID,
                            "email": "many@gmail.com"}
    r = Browser(server).sign_in()
    assert r.status == 200, r.body
