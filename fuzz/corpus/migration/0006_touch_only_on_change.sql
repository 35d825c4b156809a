-- 0006_touch_only_on_change: updated_at moves only when the row changes.
--
-- A PATCH that changes nothing ({} or the same values) and a sign-in that
-- refreshes an unchanged name and avatar used to move updated_at, telling
-- clients (and, later, caches) that something changed when nothing did.
-- organisations and users now touch updated_at only when a column differs;
-- org_credits and jobs change on every update anyway.

-- nexus:up

DROP TRIGGER organisations_touch ON organisations;
CREATE TRIGGER organisations_touch BEFORE UPDATE ON organisations
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nx_touch_updated_at();
DROP TRIGGER users_touch ON users;
CREATE TRIGGER users_touch BEFORE UPDATE ON users
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nx_touch_updated_at();

-- nexus:down

DROP TRIGGER users_touch ON users;
CREATE TRIGGER users_touch BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION nx_touch_updated_at();
DROP TRIGGER organisations_touch ON organisations;
CREATE TRIGGER organisations_touch BEFORE UPDATE ON organisations
    FOR EACH ROW EXECUTE FUNCTION nx_touch_updated_at();
