"""GET /openapi.json and GET /docs through the real binary: the document is
valid OpenAPI 3.1 (checked by @apidevtools/swagger-parser from web/), every
documented operation exists on the server, and the Swagger UI page loads
its assets from the server itself. (The route table -> document direction
is tests/unit/api/test_openapi_routes.c.)"""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import harness

WEB = os.path.join(harness.ROOT, "web")
VALIDATE_JS = """
const SwaggerParser = require('@apidevtools/swagger-parser');
SwaggerParser.validate(process.argv[1])
  .then(api => { console.log('valid ' + api.openapi); })
  .catch(err => { console.log('invalid: ' + err.message); process.exit(1); });
"""


def validate(doc):
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(WEB, "node_modules", "@apidevtools", "swagger-parser")):
        pytest.fail("node and web/node_modules are required (make web)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
    try:
        return subprocess.run([node, "-e", VALIDATE_JS, f.name], cwd=WEB, capture_output=True,
                              text=True, timeout=60)
    finally:
        os.unlink(f.name)


def test_openapi_document_is_valid_3_1(server):
    r = server.get("/openapi.json")
    assert r.status == 200
    assert r.header("Content-Type").startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    with open(os.path.join(harness.ROOT, "src", "api", "openapi.json")) as f:
        assert doc == json.load(f), "the binary serves a stale document"
    v = validate(doc)
    assert v.returncode == 0 and "valid 3.1" in v.stdout, v.stdout + v.stderr
    # The validator is real: a broken document is refused.
    broken = json.loads(json.dumps(doc))
    broken["paths"]["/health"]["get"]["responses"]["200"] = {"content": 42}
    assert validate(broken).returncode != 0
    schemas = doc["components"]["schemas"]
    assert {"Problem", "ValidationProblem", "Health"} <= set(schemas)
    assert {"bearerAuth", "cookieAuth"} <= set(doc["components"]["securitySchemes"])


def sample_path(path, op):
    """A concrete path for a pattern: enum values or a well-formed UUID."""
    def value(m):
        for p in op.get("parameters", []):
            if p.get("name") == m.group(1) and "enum" in p.get("schema", {}):
                return p["schema"]["enum"][0]
        return "00000000-0000-4000-8000-000000000000"
    return re.sub(r"\{([^}]+)\}", value, path)


def test_every_documented_operation_exists(server):
    doc = server.get("/openapi.json").json()
    n = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            n += 1
            r = server.request(method.upper(), sample_path(path, op),
                               body=b"{}" if method in ("post", "put", "patch") else None,
                               headers={"Content-Type": "application/json"})
            # 404 from a resource lookup is fine; "no route" and 405 are not.
            if r.status == 404:
                assert r.json()["detail"] != "No route matches this path.", (method, path)
            assert r.status != 405, (method, path, r.body)
            assert r.status < 500 or r.status == 503, (method, path, r.status, r.body)
    assert n >= 4


def test_docs_page_and_assets_served_locally(server):
    r = server.get("/docs")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/html")
    html = r.body.decode()
    assert "swagger-ui" in html
    # Nothing from another origin: every src/href is a path on this server.
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    assert "http://" not in html and "https://" not in html
    types = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
    for ref in refs:
        a = server.get(ref)
        assert a.status == 200, ref
        assert len(a.body) > 100, ref
        assert a.header("Content-Type").startswith(types[os.path.splitext(ref)[1]]), ref
    # The UI is pointed at this server's document.
    init = [ref for ref in refs if ref.endswith(".js") and "swagger-ui" not in ref]
    assert init and "/openapi.json" in server.get(init[0]).body.decode()
    bundle = server.get("/docs/swagger-ui-bundle.js")
    with open(os.path.join(WEB, "node_modules", "swagger-ui-dist", "swagger-ui-bundle.js"), "rb") as f:
        assert bundle.body == f.read()
    assert "max-age" in bundle.header("Cache-Control")


def test_docs_assets_are_a_closed_list(server):
    for name in ("openapi.json", "package.json", "..%2Fopenapi.json", "index.html", "swagger-ui.js"):
        r = server.get("/docs/" + name)
        assert r.status == 404, name
        assert r.header("Content-Type") == "application/problem+json"
