"""test_session_state.py - no statement in src/ depends on session state.

Behind a pooler in transaction mode (PgBouncer pool_mode=transaction) the
next transaction of a connection may run in another server session, so a
statement must neither leave state behind for a later transaction nor
expect any. This check reads the code - every string literal of
src/**/*.{c,h}, adjacent literals and macros joined so a statement split over
lines reads as one, and schema/*.sql, whose functions the runtime calls -
and fails on:

  SET or RESET without LOCAL; set_config(..., false)
  a session advisory lock (pg_advisory_lock, pg_try_advisory_lock, the
    unlocks; the pg_advisory_xact_* ones end with the transaction)
  a temporary table, view or sequence
  LISTEN / UNLISTEN
  PREPARE / DEALLOCATE, DISCARD, a cursor WITH HOLD

except the few places that run on a session known to be one of its own,
listed in ALLOWED with their reason. An allowed entry that is no longer
found fails too, so the list stays true. Run by CTest (test_session_state);
--self-test feeds the check made-up sources with each forbidden form and
the allowed ones (SET LOCAL, set_config(..., true), pg_advisory_xact_lock),
and fails unless each is judged as it should be.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# (file, what, the statement as read): each with its reason.
ALLOWED = {
    ("src/db/conn.c", "SET", "SET ROLE %s"):
        "session pool mode only: with DATABASE_POOL_MODE=transaction the runtime must log in "
        "as its role (db/target.c refuses otherwise)",
    ("src/db/notify.c", "LISTEN", "LISTEN %s"):
        "the LISTEN connection: the queue connection when it is a session of its own, or "
        "DATABASE_LISTEN_URL, which nx_db_listen_open refuses when it is a pooler",
    ("src/db/migrate.c", "session advisory lock", "SELECT pg_try_advisory_lock( LOCK_KEY )"):
        "migrations: the engine refuses a connection through a pooler before taking it",
    ("src/db/migrate.c", "session advisory lock", "SELECT pg_advisory_unlock( LOCK_KEY )"):
        "migrations: the same lock, released",
}

# A statement starts at the beginning of a text, or after ';' or the
# plpgsql words that open one. Any case in SQL; in other text (messages,
# which may say "...; set a value") only in capitals, as SQL is written here.
SQL_VERBS = (r"SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|GRANT|REVOKE|BEGIN|COMMIT|"
             r"DO|SET|RESET|LISTEN|UNLISTEN|NOTIFY|PREPARE|DEALLOCATE|DISCARD|DECLARE|VALUES|"
             r"TRUNCATE|COPY|EXPLAIN|PERFORM")
SQL_TEXT = re.compile(r"(?i:^\s*(?:" + SQL_VERBS + r")\b)|\b(?:SELECT|INSERT|UPDATE|DELETE)\b")
AFTER = r"(?:;|\bBEGIN\b|\bTHEN\b|\bELSE\b|\bLOOP\b)\s*"


def starts(body):
    """(for SQL, for other text)"""
    return (re.compile(r"(?:^\s*|" + AFTER + ")" + body, re.I),
            re.compile(r"(?i:^\s*" + body + r")|" + AFTER + body))


# ALTER ... SET/RESET clauses that may start a literal of generated DDL
# (ALTER TABLE t ALTER c SET NOT NULL); no statement begins with them.
DDL_CLAUSE = (r"(?:NOT\s+NULL|DEFAULT|DATA\s+TYPE|STATISTICS|STORAGE|SCHEMA|TABLESPACE|"
              r"LOGGED|UNLOGGED|WITHOUT|ACCESS\s+METHOD|COMPRESSION|GENERATED|\()")
RULES = [
    ("SET", starts(r"(?:SET|RESET)\s+(?!LOCAL\b)(?!" + DDL_CLAUSE + ")")),
    ("SET", re.compile(r"\bSET\s+SESSION\b", re.I)),
    ("SET", re.compile(r"\bset_config\s*\((?:[^()]|\([^()]*\))*,\s*false\s*\)", re.I)),
    ("session advisory lock",
     re.compile(r"\bpg_(?:try_)?advisory_(?:un)?lock(?:_shared|_all)?\s*\(", re.I)),
    ("temporary table", re.compile(r"\bTEMP(?:ORARY)?\s+(?:TABLE|VIEW|SEQUENCE)\b", re.I)),
    ("temporary table", re.compile(r"\bpg_temp\.", re.I)),
    ("LISTEN", starts(r"(?:UN)?LISTEN\s+[\w\"*%]")),
    ("prepared statement", starts(r"(?:PREPARE|DEALLOCATE)\s+\w")),
    ("DISCARD", starts(r"DISCARD\s+\w")),
    ("cursor WITH HOLD", re.compile(r"\bCURSOR\s+WITH\s+HOLD\b", re.I)),
]

LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
# literals joined across whitespace and MACRO names: "a(" KEY ")" -> "a( KEY )"
JOINABLE = re.compile(r'\s*(?:[A-Z][A-Z0-9_]*\s*)?$')


def strip_comments(src):
    """C source without comments; string and character literals kept."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"':
            m = LITERAL.match(src, i)
            if m:
                out.append(m.group(0))
                i = m.end()
                continue
        if c == "'":
            m = re.compile(r"'(?:[^'\\\n]|\\.)*'").match(src, i)
            if m:
                out.append("' '")
                i = m.end()
                continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(" " + "\n" * src.count("\n", i, j))  # keep line numbers
            i = j
            continue
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        out.append(c)
        i += 1
    return "".join(out)


TRAILING_MACRO = re.compile(r'\s*([A-Z][A-Z0-9_]*)\b(?!\s*\()')


def texts_of_c(src):
    """(line, text) of every literal group of a C source."""
    src = strip_comments(src)
    groups, cur, line, end = [], None, 0, 0

    def close():
        m = TRAILING_MACRO.match(src, end)  # "LISTEN " CHANNEL
        groups.append((line, cur + (" " + m.group(1) if m else "")))

    for m in LITERAL.finditer(src):
        between = src[end:m.start()]
        body = bytes(m.group(1), "utf-8").decode("unicode_escape", errors="replace")
        if cur is not None and JOINABLE.match(between):
            macro = between.strip()
            cur += (" " + macro + " " if macro else "") + body
        else:
            if cur is not None:
                close()
            cur, line = body, src.count("\n", 0, m.start()) + 1
        end = m.end()
    if cur is not None:
        close()
    return groups


def texts_of_sql(src):
    """One text per statement of a SQL file, comments dropped (function
    bodies stay inside their CREATE FUNCTION)."""
    src = re.sub(r"--[^\n]*", " ", src)
    return [(1, src)]


def normalise(text):
    return " ".join(text.split())


def check_texts(path, texts):
    """[(path, line, what, statement)] for every construct found."""
    found = []
    for line, text in texts:
        flat = normalise(text)
        sql = bool(SQL_TEXT.search(flat))
        for what, rx in RULES:
            if isinstance(rx, tuple):
                rx = rx[0] if sql else rx[1]
            if rx.search(flat):
                found.append((path, line, what, flat))
                break
    return found


def scan(root):
    found = []
    for top, exts in (("src", (".c", ".h")), ("schema", (".sql",))):
        base = os.path.join(root, top)
        for d, _, files in os.walk(base):
            for fn in sorted(files):
                if not fn.endswith(exts):
                    continue
                path = os.path.join(d, fn)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as f:
                    src = f.read()
                texts = texts_of_sql(src) if fn.endswith(".sql") else texts_of_c(src)
                found += check_texts(rel, texts)
    return found


def judge(found, allowed):
    """Problems: what is found and not allowed, and allowed entries not found."""
    problems, seen = [], set()
    for path, line, what, stmt in found:
        key = (path, what, stmt)
        if key in allowed:
            seen.add(key)
            continue
        problems.append(f"{path}:{line}: {what} outlives the transaction behind a "
                        f"transaction pooler: {stmt[:160]!r}")
    for key in allowed:
        if key not in seen:
            problems.append(f"{key[0]}: the allowed {key[1]} {key[2]!r} is gone; "
                            "remove it from ALLOWED")
    return problems


SELF_TEST_BAD = [
    ('static const nx_stmt_t a = {"a", "SET search_path = public", 0};', "SET"),
    ('static const nx_stmt_t a = {"a", "SELECT 1;"\n "SET statement_timeout = 5", 0};', "SET"),
    ('static const nx_stmt_t a = {"a", "RESET ROLE", 0};', "SET"),
    ('static const nx_stmt_t a = {"a", "SET SESSION AUTHORIZATION x", 0};', "SET"),
    ('nx_db_exec_sql(db, a, "SELECT set_config(\'nexus.org_id\', $1, false)", NULL, e);', "SET"),
    ('nx_db_exec_sql(db, a, "SELECT pg_advisory_lock(42)", NULL, e);', "session advisory lock"),
    ('static const nx_stmt_t a = {"a", "SELECT pg_try_advisory_lock(" KEY ")", 0};',
     "session advisory lock"),
    ('nx_db_exec_sql(db, a, "CREATE TEMP TABLE t (x int)", NULL, e);', "temporary table"),
    ('static const nx_stmt_t a = {"a", "CREATE TEMPORARY TABLE t AS SELECT 1", 0};',
     "temporary table"),
    ('nx_db_exec_sql(db, a, "LISTEN " NX_JOBS_CHANNEL, NULL, e);', "LISTEN"),
    ('nx_db_exec_sql(db, a, "UNLISTEN *", NULL, e);', "LISTEN"),
    ('static const nx_stmt_t a = {"a", "select 1; listen nexus_jobs", 0};', "LISTEN"),
    ('static const nx_stmt_t a = {"a", "set role nexus_app", 0};', "SET"),
    ('nx_db_exec_sql(db, a, "PREPARE p AS SELECT 1", NULL, e);', "prepared statement"),
    ('nx_db_exec_sql(db, a, "DISCARD ALL", NULL, e);', "DISCARD"),
    ('nx_db_exec_sql(db, a, "DECLARE c CURSOR WITH HOLD FOR SELECT 1", NULL, e);',
     "cursor WITH HOLD"),
]
SELF_TEST_GOOD = [
    'static const nx_stmt_t a = {"a", "SET LOCAL statement_timeout = 5", 0};',
    'static const nx_stmt_t a = {"a", "SELECT set_config(\'nexus.org_id\', $1, true)", 1};',
    'static const nx_stmt_t a = {"a", "SELECT pg_advisory_xact_lock(hashtext($1))", 1};',
    'static const nx_stmt_t a = {"a", "UPDATE jobs j SET status = \'running\'", 0};',
    'alter(x, "SET NOT NULL", NULL); alter(x, "SET DEFAULT ", d);',
    'nx_err_set(err, NX_EINVAL, "a SET ROLE would outlive the transaction");',
    'nx_err_set(err, NX_EINVAL, "JWT_SECRET_KEY: weak; set a random value");',
    'nx_err_log(err, "listen: %s", PQerrorMessage(pg));',
    '/* "SET search_path = x" in a comment */',
]
SELF_TEST_SQL_BAD = [
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "PERFORM set_config('x', 'y', false); END $$;",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "PERFORM pg_advisory_lock(1); END $$;",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "CREATE TEMP TABLE t (x int); END $$;",
]
SELF_TEST_SQL_GOOD = [
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql SECURITY DEFINER\n"
    "    SET search_path = pg_catalog, public AS $$ BEGIN "
    "PERFORM pg_advisory_xact_lock(1); PERFORM set_config('x', 'y', true); END $$;",
]


def self_test():
    errors = []
    for src, want in SELF_TEST_BAD:
        got = check_texts("t.c", texts_of_c(src))
        if not got or got[0][2] != want:
            errors.append(f"not caught as {want}: {src!r} -> {got}")
    for src in SELF_TEST_GOOD:
        got = check_texts("t.c", texts_of_c(src))
        if got:
            errors.append(f"wrongly caught: {src!r} -> {got}")
    for src in SELF_TEST_SQL_BAD:
        if not check_texts("t.sql", texts_of_sql(src)):
            errors.append(f"not caught: {src!r}")
    for src in SELF_TEST_SQL_GOOD:
        got = check_texts("t.sql", texts_of_sql(src))
        if got:
            errors.append(f"wrongly caught: {src!r} -> {got}")
    # an allowed statement in another file is still refused
    moved = [("src/api/x.c", 1, "SET", "SET ROLE %s")]
    if not judge(moved, ALLOWED):
        errors.append("an allowed statement moved to another file passed")
    return errors


def main(argv):
    if "--self-test" in argv:
        errors = self_test()
        for e in errors:
            print(f"session_state self-test: {e}")
        n = len(SELF_TEST_BAD) + len(SELF_TEST_GOOD) + len(SELF_TEST_SQL_BAD) + len(SELF_TEST_SQL_GOOD)
        print(f"session_state self-test: {n - len(errors)}/{n} judged right")
        return 1 if errors else 0
    root = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else ROOT
    problems = judge(scan(root), ALLOWED)
    for p in problems:
        print(f"session_state: {p}")
    if not problems:
        print(f"session_state: clean ({len(ALLOWED)} allowed places, each a session of its own)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
