"""Access-token tampering over HTTP - every case is a 401 problem with
WWW-Authenticate, never a 500 - and interoperability with an independent JWT
implementation (python3-jwt) in both directions, for each JWT_ALGORITHM."""
import hashlib
import time
import uuid

import jwt
import pytest

import harness
from auth_helpers import b64u, bearer, cli_token, craft, make_org, make_user, std_claims
from oidc_provider import Provider


@pytest.fixture
def ids(db):
    org = make_org(db, "Tok Org", "tok.test")
    user = make_user(db, org, "t@tok.test", "admin")
    return user, org


def assert_401(server, token, why):
    r = server.get("/api/v1/me", headers=bearer(token))
    assert r.status == 401, (why, r.status, r.body[:300])
    assert r.header("WWW-Authenticate") == 'Bearer error="invalid_token"', why
    p = r.json()
    assert p["status"] == 401 and p["type"] == "/problems/unauthorized"


def test_valid_crafted_token_is_accepted(server, ids):
    # the crafting helper itself produces good tokens, so the refusals below mean something
    tok = craft({"alg": "HS256", "typ": "at+jwt"}, std_claims(*ids))
    assert server.get("/api/v1/me", headers=bearer(tok)).status == 200


def test_tampering_is_401(server, ids):
    user, org = ids
    good_h = {"alg": "HS256", "typ": "at+jwt"}
    c = std_claims(user, org, "admin")
    now = int(time.time())
    cases = {
        "alg none, empty signature": b64u('{"alg":"none","typ":"at+jwt"}') + "." + b64u(str(c).replace("'", '"')) + ".",
        "alg none, signed": craft({"alg": "none", "typ": "at+jwt"}, c),
        "RS256 header with our secret": craft({"alg": "RS256", "typ": "at+jwt"}, c),
        "HS512 when HS256 is configured": craft({"alg": "HS512", "typ": "at+jwt"}, c, digest=hashlib.sha512),
        "wrong secret": craft(good_h, c, secret="another-secret-0123456789abcdef0123"),
        "expired": craft(good_h, std_claims(user, org, iat=now - 7200, exp=now - 3600)),
        "nbf in the future": craft(good_h, std_claims(user, org, nbf=now + 3600)),
        "iat in the future": craft(good_h, std_claims(user, org, iat=now + 3600, exp=now + 7200)),
        "wrong iss": craft(good_h, std_claims(user, org, iss="accounts.google.com")),
        "no typ": craft({"alg": "HS256"}, c),
        "typ JWT": craft({"alg": "HS256", "typ": "JWT"}, c),
        "role escalated": craft(good_h, std_claims(user, org, role="owner")),
        "sub not a uuid": craft(good_h, std_claims("42", org)),
        "truncated": cli_token_like(user, org)[:-10],
        "payload only": cli_token_like(user, org).split(".")[1],
        "garbage base64": "%%%.$$$.###",
        "not base64 json": "YWJj.ZGVm.Z2hp",
        "four parts": cli_token_like(user, org) + ".AAAA",
        "16 KB token": "eyJ" + "A" * (16 * 1024) + ".e30.sig",
        "swapped signature": swap_sig(user, org),
    }
    for claim in ("sub", "org_id", "role", "iat", "exp", "iss", "jti"):
        cases[f"missing {claim}"] = craft(good_h, std_claims(user, org, **{claim: None}))
    for why, tok in cases.items():
        assert_401(server, tok, why)


def cli_token_like(user, org):
    return jwt.encode(std_claims(user, org), harness.SECRET, algorithm="HS256",
                      headers={"typ": "at+jwt"})


def swap_sig(user, org):
    a = cli_token_like(user, org).split(".")
    b = jwt.encode(std_claims(user, org, role="admin"), harness.SECRET, algorithm="HS256",
                   headers={"typ": "at+jwt"}).split(".")
    return f"{a[0]}.{b[1]}.{a[2]}"


def test_google_id_token_is_not_an_access_token(server, ids):
    p = Provider()
    try:
        tok = p.id_token(sub="g1", email="t@tok.test")
        assert_401(server, tok, "Google ID token")
        # even an HS256 "ID token" with our secret and Google's claims
        assert_401(server, craft({"alg": "HS256", "typ": "JWT"}, p.claims(sub=ids[0])), "id-like")
    finally:
        p.close()


def test_valid_token_for_unknown_user_or_wrong_org_is_401(server, ids, db):
    user, org = ids
    assert_401(server, craft({"alg": "HS256", "typ": "at+jwt"},
                             std_claims(str(uuid.uuid4()), org)), "unknown user")
    other = make_org(db, "Other", "other.test")
    assert_401(server, craft({"alg": "HS256", "typ": "at+jwt"}, std_claims(user, other)),
               "user of another org")


def test_authorization_header_forms(server, ids):
    tok = cli_token_like(*ids)
    assert server.get("/api/v1/me", headers={"Authorization": f"bearer {tok}"}).status == 200
    for h in (f"Basic {tok}", "Bearer", "Bearer ", tok, ""):
        r = server.get("/api/v1/me", headers={"Authorization": h})
        assert r.status == 401, h


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_interop_both_ways(server_factory, db, ids, alg):
    user, org = ids
    s = server_factory(JWT_ALGORITHM=alg)
    # ours -> python3-jwt
    ours = cli_token(db, "t@tok.test", env={"JWT_ALGORITHM": alg})
    assert jwt.get_unverified_header(ours) == {"alg": alg, "typ": "at+jwt"}
    claims = jwt.decode(ours, harness.SECRET, algorithms=[alg], issuer="nexusapi",
                        options={"require": ["sub", "org_id", "role", "iat", "exp", "iss", "jti"]})
    assert claims["sub"] == user and claims["org_id"] == org and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 3600
    assert s.get("/api/v1/me", headers=bearer(ours)).status == 200
    # python3-jwt -> ours
    theirs = jwt.encode(std_claims(user, org, "admin"), harness.SECRET, algorithm=alg,
                        headers={"typ": "at+jwt"})
    r = s.get("/api/v1/me", headers=bearer(theirs))
    assert r.status == 200 and r.json()["user"]["id"] == user
    # the other algorithms are refused by this server (pinned)
    for other in ("HS256", "HS384", "HS512"):
        if other != alg:
            t = jwt.encode(std_claims(user, org), harness.SECRET, algorithm=other,
                           headers={"typ": "at+jwt"})
            assert_401(s, t, f"{other} on a {alg} server")


def test_secret_rotation_keeps_sessions_for_the_grace_period(server_factory, db, ids):
    """JWT_PREVIOUS_SECRET_KEY: tokens signed with the previous secret pass
    until JWT_PREVIOUS_SECRET_UNTIL; new ones are signed with the current."""
    user, org = ids
    old_secret, new_secret = harness.SECRET, "rotated-secret-0123456789abcdef0123456789"
    old = craft({"alg": "HS256", "typ": "at+jwt"}, std_claims(user, org, "admin"))
    fresh = craft({"alg": "HS256", "typ": "at+jwt"}, std_claims(user, org, "admin"),
                  secret=new_secret)
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    server = server_factory(JWT_SECRET_KEY=new_secret, JWT_PREVIOUS_SECRET_KEY=old_secret,
                            JWT_PREVIOUS_SECRET_UNTIL=until)
    assert server.get("/api/v1/me", headers=bearer(old)).status == 200
    assert server.get("/api/v1/me", headers=bearer(fresh)).status == 200
    assert_401(server, craft({"alg": "HS256", "typ": "at+jwt"}, std_claims(user, org),
                             secret="a-third-secret-0123456789abcdef01234567"), "third secret")
    # what is minted now is signed with the current secret only
    minted = cli_token(db, "t@tok.test", env={"JWT_SECRET_KEY": new_secret,
                                              "JWT_PREVIOUS_SECRET_KEY": old_secret,
                                              "JWT_PREVIOUS_SECRET_UNTIL": until})
    jwt.decode(minted, new_secret, algorithms=["HS256"], options={"verify_aud": False})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(minted, old_secret, algorithms=["HS256"], options={"verify_aud": False})

    # the grace period is over: the previous secret no longer signs anything valid
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    later = server_factory(JWT_SECRET_KEY=new_secret, JWT_PREVIOUS_SECRET_KEY=old_secret,
                           JWT_PREVIOUS_SECRET_UNTIL=past)
    assert_401(later, old, "previous secret after its grace period")
    assert later.get("/api/v1/me", headers=bearer(fresh)).status == 200
    assert any(l.get("msg", "").startswith("JWT_PREVIOUS_SECRET_UNTIL has passed")
               for l in later.log_lines())


def test_grace_period_ends_while_the_server_runs(server_factory, ids):
    """A token of the previous secret that passed during the grace period is
    refused once JWT_PREVIOUS_SECRET_UNTIL passes, even by a server that has
    verified it before (and may remember having done so)."""
    user, org = ids
    new_secret = "rotated-secret-0123456789abcdef0123456789"
    old = craft({"alg": "HS256", "typ": "at+jwt"}, std_claims(user, org, "admin"))
    end = int(time.time()) + 8
    server = server_factory(JWT_SECRET_KEY=new_secret, JWT_PREVIOUS_SECRET_KEY=harness.SECRET,
                            JWT_PREVIOUS_SECRET_UNTIL=time.strftime(
                                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)))
    if time.time() >= end - 1:
        pytest.skip("the machine took the whole grace period to start the server")
    # every pool thread sees it during the grace period
    while time.time() < end - 1:
        assert server.get("/api/v1/me", headers=bearer(old)).status == 200
    while time.time() < end + 1:
        time.sleep(0.2)
    for _ in range(30):
        assert_401(server, old, "previous secret after its grace period")


def test_rotation_settings_are_checked_at_start(db):
    env = {"JWT_PREVIOUS_SECRET_KEY": "previous-secret-0123456789abcdef0123456"}
    r = db.cli("config", env=env)
    assert r.returncode == 2
    assert "JWT_PREVIOUS_SECRET_UNTIL: must be set with JWT_PREVIOUS_SECRET_KEY" in r.stderr
    r = db.cli("config", env=dict(env, JWT_PREVIOUS_SECRET_UNTIL="2030-01-01",
                                  JWT_PREVIOUS_SECRET_KEY=harness.SECRET))
    assert r.returncode == 2
    assert "JWT_PREVIOUS_SECRET_KEY: must differ from JWT_SECRET_KEY" in r.stderr
    assert harness.SECRET not in r.stderr
