"""Google sign-in over HTTP against a local OpenID provider (real RS256 keys,
real PKCE, real signatures): the redirect flow and each way it is refused,
the sign-in rules of api.md (Task 3 gate) and the first-sign-in race."""
import concurrent.futures
import os
import threading
import time
import urllib.parse

import pytest

from auth_helpers import Browser, bearer, cookies_of, make_org, make_user, provider  # noqa: F401
from oidc_provider import CLIENT_ID


@pytest.fixture
def gserver(server_factory, provider):
    return server_factory(**provider.env())


def sign_in(server, provider, **claims):
    provider.next_claims = claims
    return Browser(server).sign_in()


def org_row(db, domain):
    return db.sql(f"SELECT id, name, auto_join FROM organisations WHERE domain = '{domain}'")


# ---- not configured -----------------------------------------------------------

def test_not_configured_answers_503_and_the_rest_works(server):
    for method, path in (("GET", "/auth/google/login"), ("GET", "/auth/google/callback?code=x&state=y")):
        r = server.request(method, path)
        assert r.status == 503, r.body
        p = r.json()
        assert p["type"] == "/problems/not-configured"
        assert "GOOGLE_CLIENT_ID" in p["detail"] and "GOOGLE_CLIENT_SECRET" in p["detail"]
    r = server.request("POST", "/auth/google/token", body={"id_token": "x"})
    assert r.status == 503
    assert server.get("/health").status == 200
    assert server.get("/api/v1/me").status == 401


def test_missing_secret_only_is_named(server_factory, provider):
    env = provider.env()
    env.pop("GOOGLE_CLIENT_SECRET")
    s = server_factory(**env)
    r = s.get("/auth/google/login")
    assert r.status == 503
    assert "GOOGLE_CLIENT_SECRET" in r.json()["detail"]
    assert "GOOGLE_CLIENT_ID" not in r.json()["detail"]


# ---- the redirect flow ----------------------------------------------------------

def test_login_redirect_carries_pkce_state_nonce(gserver, provider):
    url, cookie, attrs = Browser(gserver).login()
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    assert url.startswith(provider.base + "/authorize?")
    assert q["response_type"] == "code" and q["scope"] == "openid email profile"
    assert q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == "http://127.0.0.1/auth/google/callback"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 43 and len(q["nonce"]) >= 43 and q["state"] != q["nonce"]
    assert "HttpOnly" in attrs and "SameSite=Lax" in attrs and "Max-Age=600" in attrs
    assert q["state"] in cookie and q["nonce"] in cookie
    # the verifier itself never leaves in the URL
    assert q["code_challenge"] not in cookie


def test_workspace_first_user_creates_org_as_admin_with_credits(gserver, provider, db):
    r = sign_in(gserver, provider, sub="g-acme-1", email="alice@acme.test", hd="acme.test",
                name="Alice")
    assert r.status == 200, r.body
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["user"]["role"] == "admin" and body["user"]["email"] == "alice@acme.test"
    assert body["user"]["avatar_url"] == "https://example.test/p.png"
    org = body["organisation"]
    assert org["domain"] == "acme.test" and org["name"] == "acme.test" and org["auto_join"] is True
    assert set(body["user"]) == {"id", "organisation_id", "email", "name", "role", "avatar_url",
                                 "created_at", "updated_at"}
    assert set(org) == {"id", "name", "domain", "auto_join", "created_at", "updated_at"}
    assert db.sql(f"SELECT balance FROM org_credits WHERE organisation_id = '{org['id']}'") == "100"
    assert db.sql("SELECT type || ':' || amount FROM credit_transactions "
                  f"WHERE organisation_id = '{org['id']}'") == "GRANT:100"
    # the session cookie
    c = cookies_of(r)
    value, attrs = c["nexus_session"]
    assert value == body["access_token"]
    assert "HttpOnly" in attrs and "SameSite=Lax" in attrs and "Path=/" in attrs
    assert "Secure" not in attrs  # PUBLIC_URL is http://127.0.0.1
    assert c["nexus_login"][0] == ""  # cleared
    # the token works, by header and by cookie
    me = gserver.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status == 200 and me.json()["user"]["id"] == body["user"]["id"]
    me = gserver.get("/api/v1/me", headers={"Cookie": f"nexus_session={value}"})
    assert me.status == 200

    # a second account of the domain joins as a member
    r2 = sign_in(gserver, provider, sub="g-acme-2", email="bob@acme.test", hd="ACME.test")
    assert r2.status == 200, r2.body
    assert r2.json()["user"]["role"] == "member"
    assert r2.json()["organisation"]["id"] == org["id"]
    assert db.sql("SELECT count(*) FROM organisations WHERE domain = 'acme.test'") == "1"
    assert db.sql(f"SELECT balance FROM org_credits WHERE organisation_id = '{org['id']}'") == "100"

    # the same Google account again: same user, profile refreshed
    r3 = sign_in(gserver, provider, sub="g-acme-1", email="alice@acme.test", hd="acme.test",
                 name="Alice Renamed", picture=None)
    assert r3.status == 200
    u = r3.json()["user"]
    assert u["id"] == body["user"]["id"] and u["name"] == "Alice Renamed"
    assert u["avatar_url"] is None and u["role"] == "admin"


def test_consumer_account_gets_personal_org(gserver, provider, db):
    r = sign_in(gserver, provider, sub="g-gmail-1", email="carol@gmail.com")
    assert r.status == 200, r.body
    b = r.json()
    assert b["organisation"]["domain"] is None and b["user"]["role"] == "admin"
    assert db.sql(f"SELECT balance FROM org_credits WHERE organisation_id = '{b['organisation']['id']}'") == "100"
    # a second consumer account never joins it, even with the same email domain
    r2 = sign_in(gserver, provider, sub="g-gmail-2", email="dave@gmail.com")
    assert r2.json()["organisation"]["id"] != b["organisation"]["id"]
    # a company address without hd is still a consumer account
    r3 = sign_in(gserver, provider, sub="g-nohd", email="eve@acme.test")
    assert r3.json()["organisation"]["domain"] is None


def test_operator_created_user_is_linked_by_verified_email(gserver, provider, db):
    oid = make_org(db, "Linked Co", "linked.test")
    uid = make_user(db, oid, "frank@linked.test", role="admin")
    r = sign_in(gserver, provider, sub="g-frank", email="frank@linked.test", hd="linked.test",
                name="Frank")
    assert r.status == 200, r.body
    assert r.json()["user"]["id"] == uid and r.json()["user"]["role"] == "admin"
    assert db.sql(f"SELECT google_id FROM users WHERE id = '{uid}'") == "g-frank"


def test_second_google_account_with_a_members_email_is_a_clear_409(gserver, provider, db):
    """Identity is the sub: a new Google account (an account deleted and made
    again) with a member's address is neither merged into that member nor
    let in beside them; the 409 says why and what to do."""
    first = sign_in(gserver, provider, sub="g-carl-1", email="carl@again.test", hd="again.test")
    assert first.status == 200, first.body
    r = gserver.request("POST", "/auth/google/token", body={"id_token": provider.id_token(
        sub="g-carl-2", email="carl@again.test", hd="again.test")})
    p = r.json()
    assert r.status == 409 and p["type"] == "/problems/conflict", r.body
    assert "another Google account" in p["detail"] and "admin must remove" in p["detail"]
    assert db.sql("SELECT google_id FROM users WHERE email = 'carl@again.test'") == "g-carl-1"
    # once an admin removed the old user, the new account joins
    db.sql("DELETE FROM users WHERE google_id = 'g-carl-1'")
    r = gserver.request("POST", "/auth/google/token", body={"id_token": provider.id_token(
        sub="g-carl-2", email="carl@again.test", hd="again.test")})
    assert r.status == 200 and r.json()["user"]["role"] == "member", r.body


def test_signup_credits_setting(server_factory, provider, db):
    s = server_factory(SIGNUP_CREDITS=7, **provider.env())
    r = sign_in(s, provider, sub="g-credits", email="x@gmail.com")
    oid = r.json()["organisation"]["id"]
    assert db.sql(f"SELECT balance FROM org_credits WHERE organisation_id = '{oid}'") == "7"


def test_browser_asking_html_is_redirected_home(gserver, provider):
    provider.next_claims = {"email": "html@gmail.com"}
    r = Browser(gserver).sign_in(accept="text/html,application/xhtml+xml")
    assert r.status == 302 and r.header("Location") == "/"
    assert cookies_of(r)["nexus_session"][0]


def test_auto_join_off_refuses_new_domain_accounts(gserver, provider, db):
    r = sign_in(gserver, provider, sub="g-off-admin", email="admin@closed.test", hd="closed.test")
    tok = r.json()["access_token"]
    p = gserver.request("PATCH", "/api/v1/organisation", body={"auto_join": False},
                        headers=bearer(tok))
    assert p.status == 200 and p.json()["auto_join"] is False
    r2 = sign_in(gserver, provider, sub="g-off-new", email="new@closed.test", hd="closed.test")
    assert r2.status == 403, r2.body
    assert "auto_join" in r2.json()["detail"] and "closed.test" in r2.json()["detail"]
    assert db.sql("SELECT count(*) FROM users WHERE email = 'new@closed.test'") == "0"
    # the existing admin still signs in
    assert sign_in(gserver, provider, sub="g-off-admin", email="admin@closed.test",
                   hd="closed.test").status == 200


def test_twenty_concurrent_first_sign_ins_make_one_org_one_admin(gserver, provider, db):
    tokens = [provider.id_token(sub=f"g-race-{i}", email=f"u{i}@race.test", hd="race.test")
              for i in range(20)]
    barrier = threading.Barrier(20, timeout=30)

    def go(t):
        barrier.wait()
        return gserver.request("POST", "/auth/google/token", body={"id_token": t}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        results = list(ex.map(go, tokens))
    assert [r.status for r in results] == [200] * 20, [r.body for r in results if r.status != 200]
    assert db.sql("SELECT count(*) FROM organisations WHERE domain = 'race.test'") == "1"
    oid = org_row(db, "race.test").split("|")[0]
    assert db.sql(f"SELECT count(*) FROM users WHERE organisation_id = '{oid}'") == "20"
    assert db.sql(f"SELECT count(*) FROM users WHERE organisation_id = '{oid}' AND role = 'admin'") == "1"
    assert db.sql(f"SELECT count(*) FROM credit_transactions WHERE organisation_id = '{oid}'") == "1"
    assert sum(r.json()["user"]["role"] == "admin" for r in results) == 1


def test_token_endpoint_signs_in_without_nonce(gserver, provider):
    r = gserver.request("POST", "/auth/google/token",
                        body={"id_token": provider.id_token(sub="g-native", email="n@gmail.com")})
    assert r.status == 200, r.body
    assert "nexus_session" not in cookies_of(r)
    assert gserver.get("/api/v1/me", headers=bearer(r.json()["access_token"])).status == 200
    bad = gserver.request("POST", "/auth/google/token", body={"token": "x"})
    assert bad.status == 422
    assert gserver.request("POST", "/auth/google/token", body={"id_token": "garbage"}).status == 401


def test_logout_clears_the_cookie(gserver):
    r = gserver.request("POST", "/auth/logout")
    assert r.status == 204 and r.header("Content-Type") is None and r.body == b""
    value, attrs = cookies_of(r)["nexus_session"]
    assert value == "" and "Max-Age=0" in attrs


@pytest.mark.parametrize("headers,status", [
    ({"Origin": "https://evil.example"}, 403),
    ({"Origin": "null"}, 403),
    ({"Referer": "https://evil.example/page"}, 403),
    ({}, 403),  # neither: refused, like any cookie-authenticated write
    ({"Origin": "http://127.0.0.1"}, 204),
    ({"Referer": "http://127.0.0.1/dashboard"}, 204),
])
def test_logout_from_another_site_is_refused(gserver, provider, headers, status):
    """Issue 11 item 10: a cookie-carrying logout is checked like other
    cookie-authenticated writes, so another site cannot sign the user out."""
    provider.next_claims = {"email": "stay@gmail.com"}
    session = cookies_of(Browser(gserver).sign_in())["nexus_session"][0]
    r = gserver.request("POST", "/auth/logout",
                        headers=dict(headers, Cookie=f"nexus_session={session}"))
    assert r.status == status, r.body
    if status == 403:
        assert r.json()["type"] == "/problems/forbidden"
        assert "nexus_session" not in cookies_of(r)
    else:
        assert cookies_of(r)["nexus_session"][0] == ""
    # without a session cookie there is nothing to protect: 204 from anywhere
    r = gserver.request("POST", "/auth/logout", headers={"Origin": "https://evil.example"})
    assert r.status == 204


def test_session_cookie_has_the_host_prefix_over_https(server_factory, provider):
    """Issue 11 item 12: behind an https PUBLIC_URL the session cookie is
    __Host-nexus_session (Secure, Path=/, no Domain), and only that name is
    read; over plain-http loopback it stays nexus_session."""
    s = server_factory(PUBLIC_URL="https://app.example", **provider.env())
    provider.next_claims = {"email": "host@gmail.com"}
    r = Browser(s).sign_in()
    assert r.status == 200, r.body
    c = cookies_of(r)
    assert "nexus_session" not in c
    value, attrs = c["__Host-nexus_session"]
    assert value == r.json()["access_token"]
    parts = [a.strip() for a in attrs.split(";")]
    assert "Secure" in parts and "Path=/" in parts and "HttpOnly" in parts
    assert not any(a.lower().startswith("domain") for a in parts)
    assert s.get("/api/v1/me", headers={"Cookie": f"__Host-nexus_session={value}"}).status == 200
    assert s.get("/api/v1/me", headers={"Cookie": f"nexus_session={value}"}).status == 401
    # logout clears the same name, and checks where it comes from
    cookie = {"Cookie": f"__Host-nexus_session={value}"}
    r = s.request("POST", "/auth/logout", headers=dict(cookie, Origin="https://evil.example"))
    assert r.status == 403
    r = s.request("POST", "/auth/logout", headers=dict(cookie, Origin="https://app.example"))
    assert r.status == 204
    value, attrs = cookies_of(r)["__Host-nexus_session"]
    assert value == "" and "Max-Age=0" in attrs and "Secure" in attrs


# ---- refusals -------------------------------------------------------------------

def test_wrong_state_is_refused(gserver, provider):
    b = Browser(gserver)
    url, cookie, _ = b.login()
    path = b.authorize(url)
    u = urllib.parse.urlsplit(path)
    q = dict(urllib.parse.parse_qsl(u.query))
    q["state"] = q["state"][:-2] + ("AA" if not q["state"].endswith("AA") else "BB")
    r = b.callback(u.path + "?" + urllib.parse.urlencode(q), cookie)
    assert r.status == 401, r.body
    assert provider.token_requests == []  # refused before the code was spent


def test_state_from_another_browser_is_refused(gserver, provider):
    b = Browser(gserver)
    url1, cookie1, _ = b.login()
    url2, cookie2, _ = b.login()
    r = b.callback(b.authorize(url1), cookie2)
    assert r.status == 401
    r = b.callback(b.authorize(url2), None)
    assert r.status == 401
    r = b.callback(b.authorize(url2), cookie2[:-3] + "xyz")
    assert r.status == 401


def test_replayed_state_is_refused(gserver, provider):
    b = Browser(gserver)
    url, cookie, _ = b.login()
    path = b.authorize(url)
    assert b.callback(path, cookie).status == 200
    r = b.callback(path, cookie)
    assert r.status == 401 and "already used" in r.json()["detail"]


def test_bad_pkce_verifier_is_refused(gserver, provider):
    b = Browser(gserver)
    url, cookie, _ = b.login()
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    q["code_challenge"] = "A" * 43  # the provider now expects another verifier
    r = b.callback(b.authorize(f"{u.scheme}://{u.netloc}{u.path}?{urllib.parse.urlencode(q)}"), cookie)
    assert r.status == 401, r.body
    assert provider.token_requests and provider.token_requests[-1]["code_verifier"]


def test_missing_code_is_400(gserver):
    assert gserver.get("/auth/google/callback?state=abc").status == 400
    r = gserver.get("/auth/google/callback?error=access_denied&state=abc")
    assert r.status == 401


@pytest.mark.parametrize("claims,why", [
    ({"nonce": "not-the-nonce"}, "nonce"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
    ({"aud": "someone-else.apps.example"}, "aud"),
    ({"iss": "https://evil.example"}, "iss"),
    ({"email_verified": False}, "email_verified"),
    ({"email_verified": None}, "email_verified missing"),
    ({"_kid": "unpublished"}, "unknown key"),
])
def test_bad_id_tokens_are_refused(gserver, provider, db, claims, why):
    if claims.get("_kid") == "unpublished":
        kid = provider.kid
        claims = {"_kid": provider.rotate(publish=False)}
        provider.kid = kid
    before = db.sql("SELECT count(*) FROM users")
    r = sign_in(gserver, provider, sub="g-bad", email="bad@gmail.com", **claims)
    assert r.status == 401, (why, r.status, r.body)
    assert r.json()["type"] == "/problems/unauthorized"
    assert db.sql("SELECT count(*) FROM users") == before


def test_issuer_comes_from_the_discovery_document(gserver, provider):
    """Issue 11 item 13: a provider other than Google works by
    GOOGLE_DISCOVERY_URL alone: its ID tokens carry its own issuer, and
    Google's issuer is not accepted from it."""
    assert provider.issuer == provider.base
    r = sign_in(gserver, provider, sub="g-own-iss", email="own@gmail.com")
    assert r.status == 200, r.body
    for iss in ("https://accounts.google.com", "accounts.google.com", provider.base + "/"):
        r = gserver.request("POST", "/auth/google/token",
                            body={"id_token": provider.id_token(email="x@gmail.com", iss=iss)})
        assert r.status == 401 and "wrong issuer" in r.json()["detail"], (iss, r.body)


@pytest.mark.parametrize("issuer", ["https://accounts.google.com", "http://127.0.0.1:1",
                                    "{base}/other", None])
def test_discovery_document_of_another_issuer_is_refused(gserver, provider, issuer):
    """OpenID Discovery 4.3: the document's issuer must be the one its URL
    was built from, else an impostor could name a trusted issuer."""
    provider.discovery_issuer = issuer.format(base=provider.base) if issuer else ""
    r = gserver.get("/auth/google/login")
    assert r.status == 503, r.body
    assert "another issuer or none" in r.json()["detail"], r.body
    tok = provider.id_token(email="y@gmail.com")
    assert gserver.request("POST", "/auth/google/token", body={"id_token": tok}).status == 503


@pytest.mark.parametrize("offered,used", [
    (None, "client_secret_basic"),  # OpenID Discovery's default
    (["client_secret_post", "client_secret_basic"], "client_secret_basic"),  # Google's list
    (["client_secret_basic"], "client_secret_basic"),
    (["client_secret_post"], "client_secret_post"),
    (["private_key_jwt", "client_secret_post"], "client_secret_post"),
])
def test_token_endpoint_client_authentication_follows_discovery(server_factory, provider,
                                                                offered, used):
    """Issue 11 item 14: HTTP Basic first (RFC 6749 2.3.1), the secret in the
    form only when that is all the provider offers; a secret with reserved
    characters is form-encoded before Basic encoding."""
    provider.token_auth_methods = offered
    provider.client_secret = "s3cr:t/+ %&=é"
    s = server_factory(**provider.env())
    r = sign_in(s, provider, email="auth-method@gmail.com")
    assert r.status == 200, r.body
    assert provider.token_auth_used == [used]


def test_provider_offering_no_usable_client_authentication_is_503(gserver, provider):
    provider.token_auth_methods = ["private_key_jwt", "tls_client_auth"]
    r = gserver.get("/auth/google/login")
    assert r.status == 503, r.body
    assert "client_secret_basic or client_secret_post" in r.json()["detail"]


def test_claims_only_in_userinfo_are_read_from_it(gserver, provider, db):
    """Issue 11 item 15: OIDC Core 5.4 lets a provider give email,
    email_verified, name and hd from userinfo only."""
    provider.userinfo_only = {"email", "email_verified", "name", "hd"}
    r = sign_in(gserver, provider, sub="g-ui-1", email="ui@userinfo.test", hd="userinfo.test",
                name="Ursula Info")
    assert r.status == 200, r.body
    b = r.json()
    assert b["user"]["email"] == "ui@userinfo.test" and b["user"]["name"] == "Ursula Info"
    assert b["organisation"]["domain"] == "userinfo.test"
    assert provider.userinfo_requests == 1
    # a provider that puts them in the ID token is not asked
    provider.userinfo_only = set()
    assert sign_in(gserver, provider, sub="g-ui-2", email="ui2@gmail.com").status == 200
    assert provider.userinfo_requests == 1


def test_userinfo_of_another_account_is_refused(gserver, provider, db):
    provider.userinfo_only = {"email", "email_verified"}
    provider.userinfo_sub = "someone-else"
    before = db.sql("SELECT count(*) FROM users")
    r = sign_in(gserver, provider, sub="g-ui-3", email="ui3@gmail.com")
    assert r.status == 401, r.body
    assert "another account" in r.json()["detail"]
    assert db.sql("SELECT count(*) FROM users") == before


@pytest.mark.parametrize("claim", ["email", "email_verified"])
def test_a_missing_claim_is_named(gserver, provider, claim):
    """A claim that is absent is not reported as an unverified address."""
    tok = provider.id_token(email="named@gmail.com", _drop=[claim])
    r = gserver.request("POST", "/auth/google/token", body={"id_token": tok})
    assert r.status == 401, r.body
    assert f'no "{claim}" claim' in r.json()["detail"], r.body
    # the redirect flow asks userinfo, which lacks it too
    provider.userinfo_only = {claim}
    r = sign_in(gserver, provider, email="named2@gmail.com", _drop=[claim])
    assert r.status == 401, r.body
    assert f'no "{claim}" claim, in the ID token or from userinfo' in r.json()["detail"], r.body


@pytest.mark.parametrize("error,description,status,says", [
    ("access_denied", "The user cancelled the sign-in", 401,
     "cancelled or refused at the provider (access_denied: The user cancelled the sign-in)"),
    ("access_denied", None, 401, "(access_denied)"),
    ("temporarily_unavailable", "Try later", 503, "(temporarily_unavailable: Try later)"),
    ("invalid_scope", None, 401, "did not complete the sign-in (invalid_scope)"),
    ("access_denied", 'bad "quote" <b>', 401, "(access_denied)"),  # not RFC 6749 text: left out
])
def test_sign_in_the_provider_did_not_complete_names_its_error(gserver, provider, error,
                                                                description, status, says):
    """Issue 11 item 16: a cancelled sign-in (RFC 6749 4.1.2.1) comes back
    with error and state but no code; it is answered with the error named."""
    provider.authorize_error = (error, description)
    b = Browser(gserver)
    url, cookie, _ = b.login()
    path = b.authorize(url)
    assert "code=" not in path and "error=" in path
    r = b.callback(path, cookie)
    assert r.status == status, r.body
    assert says in r.json()["detail"], r.body
    assert "<b>" not in r.json()["detail"]
    assert provider.token_requests == []


@pytest.mark.parametrize("send,iss,supported,status", [
    (True, None, True, 200),                            # its own iss
    (False, None, False, 200),                          # none sent, none promised
    (True, "https://accounts.google.com", False, 401),  # another provider's
    (True, "{base}/", False, 401),
    (False, None, True, 401),                           # promised but missing
])
def test_callback_iss_is_checked(gserver, provider, db, send, iss, supported, status):
    """RFC 9207: a callback's iss names the provider that answered; another
    one's (a mix-up) is refused before the code is spent."""
    provider.send_iss, provider.iss_param_supported = send, supported
    provider.callback_iss = iss.format(base=provider.base) if iss else None
    r = sign_in(gserver, provider, email="iss-check@gmail.com")
    assert r.status == status, r.body
    if status == 401:
        assert "iss" in r.json()["detail"]
        assert provider.token_requests == []
    # an error response of another provider is refused for its iss too
    provider.authorize_error = ("access_denied", None)
    r = sign_in(gserver, provider)
    assert r.status == 401
    assert ("iss" in r.json()["detail"]) == (status == 401), r.body


def test_key_rotation_refetches_once_per_minute(gserver, provider):
    assert sign_in(gserver, provider, email="k1@gmail.com").status == 200
    fetches = provider.jwks_fetches
    assert fetches == 1
    provider.rotate()  # new kid; the JWKS now has only the new key
    assert sign_in(gserver, provider, email="k2@gmail.com").status == 200
    assert provider.jwks_fetches == fetches + 1
    # a second rotation within the minute: no refetch, refused
    provider.rotate()
    r = sign_in(gserver, provider, email="k3@gmail.com")
    assert r.status == 401 and "unknown key" in r.json()["detail"]
    for _ in range(5):
        tok = provider.id_token(email="flood@gmail.com", kid=provider.kid)
        assert gserver.request("POST", "/auth/google/token", body={"id_token": tok}).status == 401
    assert provider.jwks_fetches == fetches + 1


@pytest.mark.parametrize("cache_control", ["public, max-age=0", "no-store", "no-cache, max-age=0"])
def test_jwks_refetch_is_rate_limited_even_for_no_store(server_factory, provider, cache_control):
    """Issue 11 item 12: a JWKS answer that may not be kept is still not
    fetched again for every sign-in: at most once a minute."""
    provider.jwks_cache_control = cache_control
    s = server_factory(**provider.env())
    for i in range(4):
        tok = provider.id_token(email=f"ma{i}@gmail.com")
        assert s.request("POST", "/auth/google/token", body={"id_token": tok}).status == 200
    assert provider.jwks_fetches == 1
    # a new signing key is still picked up at once (an unknown kid may refetch)
    provider.rotate()
    tok = provider.id_token(email="rotated@gmail.com")
    assert s.request("POST", "/auth/google/token", body={"id_token": tok}).status == 200
    assert provider.jwks_fetches == 2


def test_slow_token_endpoint_does_not_stall_the_thread(server_factory, provider):
    s = server_factory(HTTP_THREADS=1, **provider.env())
    b = Browser(s)
    url, cookie, _ = b.login()
    path = b.authorize(url)
    provider.token_delay = 3.0
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", b.callback(path, cookie)))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    assert s.get("/health").status == 200
    assert time.monotonic() - t0 < 1.5
    t.join(30)
    assert out["r"].status == 200


def test_issue11_sign_ins_wait_in_a_bounded_pool(server_factory, provider):
    """Slow sign-ins run on HTTP_OFFLOAD_THREADS threads with a bounded
    queue (4 per thread): past it a sign-in is answered 503 with
    Retry-After at once, instead of a new thread for every request (before,
    24 concurrent sign-ins started 24 threads)."""
    s = server_factory(HTTP_OFFLOAD_THREADS=2, **provider.env())
    assert sign_in(s, provider).status == 200  # warm: discovery, JWKS, connections
    browsers = []
    for _ in range(24):
        b = Browser(s)
        url, cookie, _ = b.login()
        browsers.append((b, b.authorize(url), cookie))
    tasks = f"/proc/{s.proc.pid}/task"
    base = len(os.listdir(tasks))
    provider.token_delay = 3.0
    out = [None] * len(browsers)

    def run(i):  # the last of the queue waits its turn: 5 rounds of 3 s
        _, path, cookie = browsers[i]
        out[i] = s.get(path, headers={"Cookie": f"nexus_login={cookie}"}, timeout=90)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(browsers))]
    for t in threads:
        t.start()
    most = base
    while any(t.is_alive() for t in threads):
        most = max(most, len(os.listdir(tasks)))
        time.sleep(0.05)
    for t in threads:
        t.join(90)
    codes = sorted(r.status for r in out)
    assert set(codes) <= {200, 503}, codes
    busy = [r for r in out if r.status == 503]
    assert busy and codes.count(200) >= 3, codes  # both threads and the queue served
    for r in busy:
        assert r.header("Retry-After") and r.json()["type"] == "/problems/service-unavailable"
    assert most <= base + 2, f"threads went from {base} to {most}"
    provider.token_delay = 0
    assert sign_in(s, provider).status == 200  # and the pool serves on


def test_sign_in_begun_before_a_secret_rotation_completes_after_it(server_factory, provider, db):
    """The login cookie is signed with the JWT secret: one begun under the old
    secret completes on a server rotated to a new one (JWT_PREVIOUS_SECRET_KEY
    within its grace period), and not once the grace period is over."""
    import harness
    before = server_factory(**provider.env())
    url, cookie, _ = Browser(before).login()
    new = "rotated-secret-0123456789abcdef0123456789"
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    after = server_factory(**provider.env(), JWT_SECRET_KEY=new,
                           JWT_PREVIOUS_SECRET_KEY=harness.SECRET, JWT_PREVIOUS_SECRET_UNTIL=until)
    provider.next_claims = {"email": "rotate@rot.test", "hd": "rot.test"}
    r = Browser(after).callback(Browser(after).authorize(url), cookie)
    assert r.status == 200, r.body
    # the session it hands out is signed with the new secret
    token = r.json()["access_token"]
    assert after.get("/api/v1/me", headers=bearer(token)).status == 200

    url, cookie, _ = Browser(before).login()
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    over = server_factory(**provider.env(), JWT_SECRET_KEY=new,
                          JWT_PREVIOUS_SECRET_KEY=harness.SECRET, JWT_PREVIOUS_SECRET_UNTIL=past)
    r = Browser(over).callback(Browser(over).authorize(url), cookie)
    assert r.status == 401 and r.json()["detail"] == "The sign-in cookie is not ours."
