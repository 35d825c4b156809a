"""The webhook tables under the runtime roles (issue 14): row-level
security is forced, nexus_app sees and changes only its organisation's rows
and only the columns the API changes, and nexus_worker's door across
tenants is per command and per column - checked as those roles, in SQL,
against the real schema. What the code itself does through these grants
runs end to end in test_webhooks.py."""
import pytest

from auth_helpers import make_org
from test_roles import allowed, refused


def endpoint(db, org, url="https://hooks.example.com/x"):
    return db.sql("INSERT INTO webhook_endpoints (organisation_id, url, events, secret) VALUES "
                  f"('{org}', '{url}', ARRAY['job.completed'], decode(repeat('ab', 32), 'hex')) "
                  "RETURNING id").splitlines()[0]


def delivery(db, org, ep, status="pending"):
    ev = db.sql("INSERT INTO webhook_events (organisation_id, type, body) VALUES "
                f"('{org}', 'webhook.test', '{{}}') RETURNING id").splitlines()[0]
    return ev, db.sql("INSERT INTO webhook_deliveries (organisation_id, endpoint_id, event_id, "
                      f"status) VALUES ('{org}', '{ep}', '{ev}', '{status}') "
                      "RETURNING id").splitlines()[0]


@pytest.fixture
def world(db):
    a, b = make_org(db, "Org A", "a.test"), make_org(db, "Org B", "b.test")
    ea, eb = endpoint(db, a), endpoint(db, b)
    eva, da = delivery(db, a, ea)
    _, done = delivery(db, a, ea, "succeeded")
    return {"a": a, "b": b, "ea": ea, "eb": eb, "eva": eva, "da": da, "done": done}


def test_forced_rls_on_every_webhook_table(db):
    rows = db.sql("SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE "
                  "relname LIKE 'webhook_%' AND relkind = 'r' ORDER BY relname").splitlines()
    assert rows == ["webhook_deliveries|t|t", "webhook_endpoints|t|t", "webhook_events|t|t"]


def test_app_sees_and_changes_only_its_organisation(db, world):
    a, ea, eb = world["a"], world["ea"], world["eb"]
    for table in ("webhook_endpoints", "webhook_events", "webhook_deliveries"):
        assert allowed(db, "nexus_app", f"SELECT count(*) FROM {table};") == "0"  # no tenant
        assert allowed(db, "nexus_app", f"SELECT count(DISTINCT organisation_id) FROM {table} "
                       f"WHERE organisation_id <> '{a}';", a) == "0"
    # what the API changes ...
    assert allowed(db, "nexus_app", "UPDATE webhook_endpoints SET url = 'https://x.example/', "
                   f"enabled = false, disabled_reason = 'r' WHERE id = '{ea}' RETURNING id;",
                   a) == ea
    assert allowed(db, "nexus_app", "UPDATE webhook_deliveries SET status = 'pending', "
                   f"run_at = now(), max_attempts = 2 WHERE id = '{world['done']}' RETURNING id;",
                   a) == world["done"]
    # ... another organisation's rows are out of reach ...
    assert allowed(db, "nexus_app", f"UPDATE webhook_endpoints SET url = 'https://evil/' WHERE "
                   f"id = '{eb}' RETURNING id;", a) == ""
    assert allowed(db, "nexus_app", f"DELETE FROM webhook_endpoints WHERE id = '{eb}' "
                   "RETURNING id;", a) == ""
    refused(db, "nexus_app", "INSERT INTO webhook_endpoints (organisation_id, url, events, secret) "
            f"VALUES ('{world['b']}', 'https://x/', ARRAY['job.failed'], "
            "decode(repeat('ab', 32), 'hex'));", a)
    # ... and so are the workers' columns, even in its own organisation
    for sql in (f"UPDATE webhook_endpoints SET lease_owner = 'me' WHERE id = '{ea}';",
                f"UPDATE webhook_endpoints SET lease_expires_at = now() WHERE id = '{ea}';",
                f"UPDATE webhook_endpoints SET organisation_id = organisation_id;",
                f"UPDATE webhook_deliveries SET attempts = '[]' WHERE id = '{world['da']}';",
                f"UPDATE webhook_deliveries SET attempt_count = 0 WHERE id = '{world['da']}';",
                f"UPDATE webhook_deliveries SET lease_owner = 'me' WHERE id = '{world['da']}';",
                f"UPDATE webhook_events SET body = 'forged' WHERE id = '{world['eva']}';",
                "DELETE FROM webhook_events;", "DELETE FROM webhook_deliveries;"):
        refused(db, "nexus_app", sql, a)


@pytest.mark.parametrize("tenant", [False, True])
def test_worker_door_is_per_command_and_column(db, world, tenant):
    ctx = world["a"] if tenant else None
    ea, da = world["ea"], world["da"]
    if not tenant:  # across tenants it reads everything the claim needs
        assert allowed(db, "nexus_worker", "SELECT count(*) FROM webhook_endpoints;") == "2"
    # what the queue does: lease, record, prune
    assert allowed(db, "nexus_worker", "UPDATE webhook_endpoints SET lease_owner = 'w', "
                   "lease_expires_at = now(), failing_since = now(), enabled = false, "
                   f"disabled_reason = 'r' WHERE id = '{ea}' RETURNING id;", ctx) == ea
    assert allowed(db, "nexus_worker", "UPDATE webhook_deliveries SET attempt_count = 1, "
                   f"lease_owner = 'w', run_at = now() WHERE id = '{da}' RETURNING id;", ctx) == da
    assert allowed(db, "nexus_worker", "UPDATE webhook_deliveries SET attempts = '[]', "
                   f"status = 'succeeded', lease_owner = NULL WHERE id = '{da}' RETURNING id;",
                   ctx) == da
    if not tenant:  # a finished delivery never changes again through the worker's door
        assert allowed(db, "nexus_worker", "UPDATE webhook_deliveries SET run_at = now() "
                       f"WHERE id = '{world['done']}' RETURNING id;") == ""
    # nothing else: no column or command the queue does not use ...
    for sql in (f"UPDATE webhook_deliveries SET endpoint_id = endpoint_id WHERE id = '{da}';",
                f"UPDATE webhook_deliveries SET event_id = event_id WHERE id = '{da}';",
                f"UPDATE webhook_events SET body = 'forged' WHERE id = '{world['eva']}';",
                "DELETE FROM webhook_deliveries;"):
        refused(db, "nexus_worker", sql, ctx)
    if not tenant:
        # ... and across tenants not what an endpoint's owner set, although
        # nexus_worker inherits nexus_app's column grants (in a tenant it has
        # that tenant's rights, as nexus_app does)
        for sql in (f"UPDATE webhook_endpoints SET url = 'https://evil/' WHERE id = '{ea}';",
                    f"UPDATE webhook_endpoints SET secret = decode(repeat('cd', 32), 'hex') "
                    f"WHERE id = '{ea}';",
                    f"UPDATE webhook_endpoints SET events = ARRAY['job.failed'] WHERE id = '{ea}';",
                    f"UPDATE webhook_endpoints SET previous_secret_expires_at = now() "
                    f"WHERE id = '{ea}';",
                    "INSERT INTO webhook_endpoints (organisation_id, url, events, secret) VALUES "
                    f"('{world['a']}', 'https://x/', ARRAY['job.failed'], "
                    "decode(repeat('ab', 32), 'hex'));"):
            refused(db, "nexus_worker", sql)
        assert allowed(db, "nexus_worker", "DELETE FROM webhook_endpoints RETURNING id;") == ""
        assert db.sql("SELECT count(*) FROM webhook_endpoints WHERE url = "
                      "'https://hooks.example.com/x'") == "2"
    assert allowed(db, "nexus_worker", f"DELETE FROM webhook_events WHERE id = '{world['eva']}' "
                   "RETURNING id;", ctx) == world["eva"]
    # its delivery went with it (the cascade runs as the owner)
    assert db.sql(f"SELECT count(*) FROM webhook_deliveries WHERE id = '{da}'") == "0"
