"""The access table of api.md over HTTP (Task 4 gate): no token, member and
admin against public, member and admin routes and against another
organisation's resources; role changes and removals take effect on the very
next request; the last admin is protected; pagination and validation of the
user and organisation endpoints; the cookie's Origin rule; `nexusapi token`."""
import concurrent.futures
import json
import threading
import uuid

import pytest

from auth_helpers import bearer, cli_token, make_org, make_user


class World:
    def __init__(self, db):
        self.db = db
        self.org_a = make_org(db, "Org A", "a.test")
        self.admin_a = make_user(db, self.org_a, "admin@a.test", "admin", 0)
        self.member_a = make_user(db, self.org_a, "member@a.test", "member", 1)
        self.extra_a = make_user(db, self.org_a, "extra@a.test", "member", 2)
        self.org_b = make_org(db, "Org B", "b.test")
        self.admin_b = make_user(db, self.org_b, "admin@b.test", "admin")
        self.tok = {"admin": cli_token(db, "admin@a.test"), "member": cli_token(db, "member@a.test"),
                    "admin_b": cli_token(db, "admin@b.test")}

    def h(self, who):
        return bearer(self.tok[who]) if who else {}


@pytest.fixture
def world(db):
    return World(db)


def call(server, who, method, path, world, body=None):
    return server.request(method, path, body=body, headers=world.h(who))


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/docs"])
@pytest.mark.parametrize("who", [None, "member", "admin"])
def test_public_routes(server, world, path, who):
    assert call(server, who, "GET", path, world).status == 200


def test_member_routes(server, world):
    paths = ["/api/v1/me", "/api/v1/organisation", "/api/v1/users",
             f"/api/v1/users/{world.extra_a}"]
    for p in paths:
        r = call(server, None, "GET", p, world)
        assert r.status == 401, p
        assert r.header("WWW-Authenticate") == 'Bearer error="invalid_token"'
        assert r.header("Content-Type").startswith("application/problem+json")
        for who in ("member", "admin"):
            assert call(server, who, "GET", p, world).status == 200, (who, p)
    me = call(server, "member", "GET", "/api/v1/me", world).json()
    assert me["user"]["id"] == world.member_a and me["organisation"]["id"] == world.org_a
    org = call(server, "member", "GET", "/api/v1/organisation", world).json()
    assert org["member_count"] == 3 and org["credit_balance"] == 0 and org["domain"] == "a.test"


def test_admin_routes(server, world):
    cases = [("PATCH", f"/api/v1/users/{world.extra_a}", {"role": "member"}),
             ("PATCH", "/api/v1/organisation", {"name": "Org A renamed"}),
             ("DELETE", f"/api/v1/users/{world.extra_a}", None)]
    for method, path, body in cases:
        assert call(server, None, method, path, world, body).status == 401
        r = call(server, "member", method, path, world, body)
        assert r.status == 403, (method, path, r.body)
        assert r.json()["type"] == "/problems/forbidden"
    assert world.db.sql(f"SELECT count(*) FROM users WHERE id = '{world.extra_a}'") == "1"
    expect = [200, 200, 204]
    for (method, path, body), status in zip(cases, expect):
        r = call(server, "admin", method, path, world, body)
        assert r.status == status, (method, path, r.body)
        if status == 204:  # no content, so no content type
            assert r.header("Content-Type") is None and r.body == b"" and r.header("X-Request-ID")
    assert world.db.sql(f"SELECT name FROM organisations WHERE id = '{world.org_a}'") == "Org A renamed"
    assert call(server, "admin", "GET", f"/api/v1/users/{world.extra_a}", world).status == 404


def test_who_may_call_comes_before_what_they_sent(server, world):
    """A member on an admin route is 403 whatever the body; a removed user is
    401 whatever the body; the body's own errors are for those allowed."""
    json_h = {"Content-Type": "application/json"}
    bad = {  # body, headers -> what an admin gets on PATCH /api/v1/organisation
        "wrong type": ('{"name": 5}', json_h, 422),
        "malformed": ("{", json_h, 400),
        "repeated key": ('{"name": "x", "name": "y"}', json_h, 400),
        "not JSON": ("name=x", {"Content-Type": "text/plain"}, 415),
    }
    for why, (body, extra, admin_status) in bad.items():
        for path in ("/api/v1/organisation", f"/api/v1/users/{world.extra_a}"):
            r = server.request("PATCH", path, body=body, headers={**world.h("member"), **extra})
            assert r.status == 403, (why, path, r.body)
            assert r.json()["type"] == "/problems/forbidden"
        r = server.request("PATCH", "/api/v1/organisation", body=body,
                           headers={**world.h("admin"), **extra})
        assert r.status == admin_status, (why, r.body)
    # a body announced as too large is refused before it is read: 403 first
    too_big = {**json_h, "Content-Length": str(2 << 20)}
    r = server.request("PATCH", "/api/v1/organisation", headers={**world.h("member"), **too_big})
    assert r.status == 403, r.body
    r = server.request("PATCH", "/api/v1/organisation", headers={**world.h("admin"), **too_big})
    assert r.status == 413, r.body
    # a removed user's token: 401 even with a body that is wrong in itself
    make_user(world.db, world.org_a, "gone@a.test", "member", 9)
    tok = cli_token(world.db, "gone@a.test")
    world.db.sql("DELETE FROM users WHERE email = 'gone@a.test'")
    r = server.request("POST", "/api/v1/summarise", body="{",
                       headers={"Authorization": f"Bearer {tok}", **json_h})
    assert r.status == 401, r.body
    assert world.db.sql(f"SELECT name FROM organisations WHERE id = '{world.org_a}'") != "x"


def test_issue11_who_may_call_comes_before_the_path_and_query(server, world):
    """A malformed id in the path (404) or a bad query argument (422) is for
    callers allowed to use the route: a member on an admin route is 403 and
    a removed user 401 first (before, both got the 404 or the 422)."""
    assert call(server, "member", "DELETE", "/api/v1/users/not-a-uuid", world).status == 403
    assert call(server, "member", "PATCH", "/api/v1/users/not-a-uuid", world,
                {"role": "admin"}).status == 403
    assert call(server, "admin", "DELETE", "/api/v1/users/not-a-uuid", world).status == 404
    assert call(server, "member", "GET", "/api/v1/users/not-a-uuid", world).status == 404
    assert call(server, "member", "GET", "/api/v1/users?limit=0", world).status == 422
    make_user(world.db, world.org_a, "gone@a.test", "admin", 9)
    tok = {"Authorization": f"Bearer {cli_token(world.db, 'gone@a.test')}"}
    world.db.sql("DELETE FROM users WHERE email = 'gone@a.test'")
    for method, path in (("DELETE", "/api/v1/users/not-a-uuid"),
                         ("GET", "/api/v1/users/not-a-uuid"),
                         ("GET", "/api/v1/jobs/not-a-uuid"),
                         ("GET", "/api/v1/users?limit=0"),
                         ("GET", "/api/v1/jobs?status=bogus")):
        r = server.request(method, path, headers=tok)
        assert r.status == 401, (method, path, r.body)
        assert r.header("WWW-Authenticate") == 'Bearer error="invalid_token"'


def test_a_patch_that_changes_nothing_keeps_updated_at(server, world):
    org0 = call(server, "admin", "GET", "/api/v1/organisation", world).json()
    user0 = call(server, "admin", "GET", f"/api/v1/users/{world.extra_a}", world).json()
    for body in ({}, {"name": org0["name"], "auto_join": org0["auto_join"]}):
        r = call(server, "admin", "PATCH", "/api/v1/organisation", world, body)
        assert r.status == 200 and r.json()["updated_at"] == org0["updated_at"], (body, r.body)
    r = call(server, "admin", "PATCH", f"/api/v1/users/{world.extra_a}", world, {"role": "member"})
    assert r.status == 200 and r.json()["updated_at"] == user0["updated_at"], r.body
    # a real change does move it
    r = call(server, "admin", "PATCH", "/api/v1/organisation", world, {"name": "Renamed"})
    assert r.json()["updated_at"] > org0["updated_at"]


def test_other_organisations_resources_are_404(server, world):
    other = world.admin_b
    for who in ("member", "admin"):
        assert call(server, who, "GET", f"/api/v1/users/{other}", world).status == 404
    assert call(server, "admin", "PATCH", f"/api/v1/users/{other}", world,
                {"role": "member"}).status == 404
    assert call(server, "admin", "DELETE", f"/api/v1/users/{other}", world).status == 404
    assert world.db.sql(f"SELECT role FROM users WHERE id = '{other}'") == "admin"
    # lists never show them
    ids = [u["id"] for u in call(server, "admin", "GET", "/api/v1/users", world).json()["items"]]
    assert other not in ids and len(ids) == 3
    # unknown and malformed ids are 404 too
    assert call(server, "admin", "GET", f"/api/v1/users/{uuid.uuid4()}", world).status == 404
    assert call(server, "admin", "GET", "/api/v1/users/not-a-uuid", world).status == 404
    # a token whose org_id is not the user's organisation is refused
    tok_b = world.tok["admin_b"]
    assert server.get("/api/v1/me", headers=bearer(tok_b)).json()["organisation"]["id"] == world.org_b


def test_demotion_and_removal_take_effect_on_next_request(server, world):
    # promote the member: their old "member" token now works on admin routes
    assert call(server, "admin", "PATCH", f"/api/v1/users/{world.member_a}", world,
                {"role": "admin"}).status == 200
    assert call(server, "member", "PATCH", "/api/v1/organisation", world,
                {"auto_join": False}).status == 200
    # demote them again: their token still says nothing new, the next request is 403
    r = call(server, "admin", "PATCH", f"/api/v1/users/{world.member_a}", world, {"role": "member"})
    assert r.status == 200 and r.json()["role"] == "member"
    assert call(server, "member", "PATCH", "/api/v1/organisation", world,
                {"auto_join": True}).status == 403
    assert call(server, "member", "GET", "/api/v1/me", world).status == 200
    # remove them: 401 on the next request
    assert call(server, "admin", "DELETE", f"/api/v1/users/{world.member_a}", world).status == 204
    r = call(server, "member", "GET", "/api/v1/me", world)
    assert r.status == 401 and r.header("WWW-Authenticate")


def test_last_admin_cannot_be_demoted_or_removed(server, world):
    r = call(server, "admin", "PATCH", f"/api/v1/users/{world.admin_a}", world, {"role": "member"})
    assert r.status == 409, r.body
    assert r.json()["type"] == "/problems/conflict"
    assert call(server, "admin", "DELETE", f"/api/v1/users/{world.admin_a}", world).status == 409
    assert world.db.sql(f"SELECT role FROM users WHERE id = '{world.admin_a}'") == "admin"
    # with a second admin the first may step down
    assert call(server, "admin", "PATCH", f"/api/v1/users/{world.extra_a}", world,
                {"role": "admin"}).status == 200
    r = call(server, "admin", "PATCH", f"/api/v1/users/{world.admin_a}", world, {"role": "member"})
    assert r.status == 200


def test_two_admins_demoting_each_other_at_once_leave_one(server, world):
    db = world.db
    second = world.extra_a
    db.sql(f"UPDATE users SET role = 'admin' WHERE id = '{second}'")
    tok2 = cli_token(db, "extra@a.test")
    for _ in range(5):
        barrier = threading.Barrier(2, timeout=30)

        def go(args):
            tok, target = args
            barrier.wait()
            return server.request("PATCH", f"/api/v1/users/{target}", body={"role": "member"},
                                  headers=bearer(tok)).status

        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            statuses = sorted(ex.map(go, [(world.tok["admin"], second), (tok2, world.admin_a)]))
        admins = int(db.sql(f"SELECT count(*) FROM users WHERE organisation_id = '{world.org_a}' "
                            "AND role = 'admin'"))
        assert admins >= 1, statuses
        assert statuses in ([200, 403], [200, 409]), statuses
        db.sql(f"UPDATE users SET role = 'admin' WHERE id IN ('{second}', '{world.admin_a}')")


def test_users_pagination_oldest_first(server, world):
    db = world.db
    for i in range(22):
        make_user(db, world.org_a, f"p{i:02d}@a.test", "member", 10 + i)
    seen, cursor, pages = [], None, 0
    while True:
        q = "/api/v1/users?limit=10" + (f"&cursor={cursor}" if cursor else "")
        r = call(server, "member", "GET", q, world)
        assert r.status == 200, r.body
        page = r.json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3 and len(seen) == 25
    assert len({u["id"] for u in seen}) == 25
    created = [u["created_at"] for u in seen]
    assert created == sorted(created)
    assert seen[0]["id"] == world.admin_a
    assert len(call(server, "member", "GET", "/api/v1/users", world).json()["items"]) == 20
    for bad in ("limit=0", "limit=101", "limit=x", "cursor=nonsense", "cursor=1_notauuid"):
        r = call(server, "member", "GET", f"/api/v1/users?{bad}", world)
        assert r.status == 422, bad


def test_a_listed_user_reads_byte_for_byte_as_the_user_itself(server, world):
    """The list renders its users in C from plain columns; GET /users/{id}
    still has PostgreSQL render them (nx_user_json). Each listed user is the
    very bytes of its own GET, names with quotes, backslashes, line breaks,
    tabs, other control characters and non-ASCII letters included, NULL
    fields as null."""
    db = world.db
    odd = ["Zoë \"Q\" O'Neil", "back\\slash", "two\nlines\ttab\r", "bell\u0007 \u001f",
           "日本語 ✓", None]
    for i, name in enumerate(odd):
        uid = make_user(db, world.org_a, f"odd{i}@a.test", "member", 30 + i)
        value = "NULL" if name is None else "'" + name.replace("'", "''") + "'"
        db.sql(f"UPDATE users SET name = {value}, avatar_url = "
               f"{'NULL' if i % 2 else repr('https://img.test/' + str(i))} WHERE id = '{uid}'")
    r = call(server, "member", "GET", "/api/v1/users?limit=100", world)
    assert r.status == 200, r.body
    items = r.json()["items"]
    assert [u["name"] for u in items[-len(odd):]] == odd
    for u in items:
        one = call(server, "member", "GET", f"/api/v1/users/{u['id']}", world)
        assert one.status == 200, one.body
        assert one.body in r.body, (one.body, r.body)
        assert one.json() == u


@pytest.mark.parametrize("body,field", [
    ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": "x" * 256}, "name"),
    ({"name": 5}, "name"), ({"auto_join": "yes"}, "auto_join"), ({"domain": "x.test"}, "domain"),
])
def test_organisation_patch_validation(server, world, body, field):
    r = call(server, "admin", "PATCH", "/api/v1/organisation", world, body)
    assert r.status == 422, r.body
    assert field in [e["field"] for e in r.json()["errors"]]


def test_organisation_patch_ok(server, world):
    r = call(server, "admin", "PATCH", "/api/v1/organisation", world,
             {"name": "Ünïcode " + "é" * 200, "auto_join": False})
    assert r.status == 200, r.body
    o = r.json()
    assert o["auto_join"] is False and o["name"].startswith("Ünïcode")
    assert set(o) == {"id", "name", "domain", "auto_join", "created_at", "updated_at"}
    assert o["updated_at"].endswith("Z")
    # surrounding blanks are not part of a name; 255 characters between them fit
    r = call(server, "admin", "PATCH", "/api/v1/organisation", world,
             {"name": " \t Acme Ltd\r\n "})
    assert r.status == 200 and r.json()["name"] == "Acme Ltd", r.body
    r = call(server, "admin", "PATCH", "/api/v1/organisation", world, {"name": "  " + "n" * 255 + "  "})
    assert r.status == 200 and r.json()["name"] == "n" * 255, r.body


def test_user_patch_validation(server, world):
    for body in ({"role": "owner"}, {"role": None}, {}, {"role": "admin", "email": "x@y"}):
        r = call(server, "admin", "PATCH", f"/api/v1/users/{world.extra_a}", world, body)
        assert r.status == 422, (body, r.body)


def test_cookie_auth_needs_matching_origin_for_writes(server, world):
    cookie = {"Cookie": f"nexus_session={world.tok['admin']}"}
    assert server.get("/api/v1/me", headers=cookie).status == 200
    path = "/api/v1/organisation"
    r = server.request("PATCH", path, body={"name": "x"}, headers=cookie)
    assert r.status == 403, r.body
    r = server.request("PATCH", path, body={"name": "x"}, headers=dict(cookie, Origin="http://evil.test"))
    assert r.status == 403
    r = server.request("PATCH", path, body={"name": "x"},
                       headers=dict(cookie, Origin="http://127.0.0.1.evil.test"))
    assert r.status == 403
    r = server.request("PATCH", path, body={"name": "via cookie"},
                       headers=dict(cookie, Origin="http://127.0.0.1"))
    assert r.status == 200
    r = server.request("PATCH", path, body={"name": "via referer"},
                       headers=dict(cookie, Referer="http://127.0.0.1/dashboard"))
    assert r.status == 200
    # bearer tokens need no Origin
    assert server.request("PATCH", path, body={"name": "bearer"},
                          headers=bearer(world.tok["admin"])).status == 200


def test_token_verb(db, server, world):
    # ambiguous email across organisations needs --org
    make_user(db, world.org_b, "member@a.test")
    r = db.cli("token", "member@a.test")
    assert r.returncode == 2 and "--org" in r.stderr
    tb = cli_token(db, "member@a.test", "--org", "b.test")
    me = server.get("/api/v1/me", headers=bearer(tb)).json()
    assert me["organisation"]["id"] == world.org_b
    ta = cli_token(db, "MEMBER@a.test", "--org", world.org_a, "--minutes", "5")
    assert server.get("/api/v1/me", headers=bearer(ta)).json()["organisation"]["id"] == world.org_a
    r = db.cli("token", "nobody@a.test")
    assert r.returncode == 1 and "nobody@a.test" in r.stderr
    assert db.cli("token").returncode == 2
    assert db.cli("token", "x@y.z", "--minutes", "0").returncode == 2
