"""Reads the server's SQL from the source and renders pgbench scripts from it.

The bound of an HTTP scenario is pgbench running exactly the statements that
the server sends, so the scripts are not typed by hand: bench/*.sql are
templates whose lines

    -- @stmt NAME ARG1 ARG2 ...

are replaced by the SQL of the statement NAME (the first string of a
`nx_stmt_t x = {"NAME", "SQL...", n}` definition anywhere under src/), with
$k replaced by ARGk. An ARG is a pgbench variable (`:name`) or NULL (sent as
the parameter NULLIF(:null_param, '-'), since pgbench variables cannot be NULL).

:org and :user stand for a random organisation (picked per transaction by
`\set o random(1, N)`) and its token user. pgbench variables hold numbers or
fixed strings only, so they become the seed's derivation of those ids,
md5('nexus-bench-org-' || :o)::uuid: one script, one prepared statement per
connection, as in the server (one script per organisation would make every
connection plan each statement 5 times per organisation before the plan cache
settles, which the server never does), at the price of an md5() per id.
"""
import hashlib
import os
import re

STMT_DEF = re.compile(r"\bnx_stmt_t\s+(\w+)\s*=\s*\{")
STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
DESIGNATED = re.compile(r"\.(name|sql|nparams)\s*=")
ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'", "r": "\r", "0": "\0"}


def _unescape(s):
    return re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(1)), s)


def _strip_comments(src):
    # keep string literals intact; drop /* */ and // comments
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"':
            m = STRING.match(src, i)
            if m:
                out.append(m.group(0))
                i = m.end()
                continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
            continue
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "'":  # char literal such as '"'
            m = re.compile(r"'(?:[^'\\]|\\.)'").match(src, i)
            if m:
                out.append("' '")
                i = m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _groups(body):
    """String-literal groups of an initializer (adjacent literals concatenated),
    with the designator before each group when there is one."""
    groups, cur, field = [], None, None
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|\.(?:name|sql|nparams)\s*=|,', body):
        tok = m.group(0)
        if tok == ",":
            if cur is not None:
                groups.append((field, cur))
            cur, field = None, None
        elif tok.startswith("."):
            field = tok[1:].split("=")[0].strip()
        else:
            cur = (cur or "") + _unescape(tok[1:-1])
    if cur is not None:
        groups.append((field, cur))
    return groups


def extract(src_dir):
    """{statement name: {"sql", "nparams", "file", "ident"}} for every nx_stmt_t."""
    found = {}
    for root, _, files in os.walk(src_dir):
        for fn in sorted(files):
            if not fn.endswith(".c"):
                continue
            path = os.path.join(root, fn)
            with open(path, encoding="utf-8", errors="replace") as f:
                src = _strip_comments(f.read())
            for m in STMT_DEF.finditer(src):
                end = src.find("};", m.end())
                if end < 0:
                    continue
                body = src[m.end():end]
                groups = _groups(body)
                named = {k: v for k, v in groups if k}
                plain = [v for k, v in groups if not k]
                name = named.get("name", plain[0] if plain else None)
                sql = named.get("sql", plain[1] if len(plain) > 1 else None)
                if name is None or sql is None:
                    continue
                nums = re.findall(r"\.nparams\s*=\s*(\d+)|,\s*(\d+)\s*,?\s*$", body.strip())
                nparams = None
                for a, b in nums:
                    nparams = int(a or b)
                rel = os.path.relpath(path, os.path.dirname(src_dir))
                found[name] = {"sql": sql, "nparams": nparams, "file": rel, "ident": m.group(1)}
                found.setdefault(m.group(1), found[name])  # also by C identifier
    return found


class RenderError(Exception):
    pass


def _substitute(sql, args, name):
    used = {int(x) for x in re.findall(r"\$(\d+)", sql)}
    if used and max(used) > len(args):
        raise RenderError(f"{name} takes ${max(used)} but the template gives {len(args)} arguments")
    # pgbench (prepared mode) takes any ':word' for a variable, even inside quotes
    bad = [m.group(0) for m in re.finditer(r"(?<!:):[A-Za-z_]\w*", sql)]
    if bad:
        raise RenderError(f"{name}: SQL contains {bad[0]!r}, which pgbench would read as a variable")
    # pgbench variables cannot be NULL (nor empty): a NULL parameter is sent as
    # NULLIF(:null_param, '-') with null_param defined as '-' by the harness
    args = ["(NULLIF(:null_param, '-'))" if a == "NULL" else a for a in args]
    return re.sub(r"\$(\d+)", lambda m: args[int(m.group(1)) - 1], sql)


def render(template_path, src_dir, out_dir, orgs, token_user):
    """Writes out_dir/<template base>.sql; returns (path, {"statements", "sha", "sample"})."""
    stmts = extract(src_dir)
    with open(template_path) as f:
        lines = f.read().splitlines()
    used, body = [], [f"\\set o random(1, {orgs})"]
    for line in lines:
        m = re.match(r"\s*--\s*@stmt\s+(\S+)(.*)$", line)
        if not m:
            if line.lstrip().startswith("--"):
                continue  # template comments stay out of the script
            body.append(line)
            continue
        name, args = m.group(1), m.group(2).split()
        st = stmts.get(name)
        if not st:
            raise RenderError(f"statement {name!r} not found in {src_dir} (not written yet?)")
        if st["nparams"] is not None and st["nparams"] != len(args):
            raise RenderError(f"{name} has {st['nparams']} parameters, the template gives {len(args)}")
        sql = _substitute(st["sql"].strip().rstrip(";"), args, name)
        body.append(f"-- {name} ({st['file']})")
        body.append(sql + ";")
        used.append({"name": name, "file": st["file"], "sql": st["sql"]})
    text = "\n".join(body) + "\n"
    ids = {"org": "(md5('nexus-bench-org-' || :o)::uuid)",
           "user": f"(md5('nexus-bench-user-' || :o || '-{token_user}')::uuid)"}
    text = re.sub(r"(?<!:):(org|user)\b", lambda m: ids[m.group(1)], text)
    path = os.path.join(out_dir, os.path.splitext(os.path.basename(template_path))[0] + ".sql")
    with open(path, "w") as f:
        f.write(text)
    sha = hashlib.sha256("".join(u["sql"] for u in used).encode()).hexdigest()[:12]
    return path, {"statements": used, "sha": sha, "sample": text}


if __name__ == "__main__":  # debugging aid: python3 bench/lib/stmts.py [src]
    import sys
    for k, v in sorted(extract(sys.argv[1] if len(sys.argv) > 1 else "src").items()):
        if k != v["ident"]:
            print(f"{k} ({v['file']}, {v['nparams']} params): {' '.join(v['sql'].split())[:150]}")
