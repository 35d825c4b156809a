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
        source = json.load(f)
    # served: the repository's document, completed (v2 copies, job registry)
    assert set(source["paths"]) <= set(doc["paths"]), "the binary serves a stale document"
    for path, item in source["paths"].items():
        for method, op in item.items():
            assert doc["paths"][path][method]["operationId"] == op["operationId"]
    assert "${" not in r.body.decode()
    v = validate(doc)
    assert v.returncode == 0 and "valid 3.1" in v.stdout, v.stdout + v.stderr
    # The validator is real: a broken document is refused.
    broken = json.loads(json.dumps(doc))
    broken["paths"]["/health"]["get"]["responses"]["200"] = {"content": 42}
    assert validate(broken).returncode != 0
    schemas = doc["components"]["schemas"]
    assert {"Problem", "ValidationProblem", "Health"} <= set(schemas)
    assert {"bearerAuth", "cookieAuth"} <= set(doc["components"]["securitySchemes"])


def test_each_version_has_its_document(server):
    both = server.get("/openapi.json").json()
    for v, other in (("v1", "v2"), ("v2", "v1")):
        r = server.get(f"/openapi/{v}.json")
        assert r.status == 200
        doc = r.json()
        paths = set(doc["paths"])
        assert any(p.startswith(f"/api/{v}/") for p in paths)
        assert not any(p.startswith(f"/api/{other}/") for p in paths)
        assert paths <= set(both["paths"])
        check = validate(doc)
        assert check.returncode == 0 and "valid 3.1" in check.stdout, check.stdout + check.stderr
    # every v1 resource is under v2 too, except the v1 submission routes
    v1 = {p[len("/api/v1"):] for p in both["paths"] if p.startswith("/api/v1/")}
    v2 = {p[len("/api/v2"):] for p in both["paths"] if p.startswith("/api/v2/")}
    assert v1 - v2 == {"/summarise", "/summarize", "/analyse"}
    assert server.get("/openapi/v3.json").status == 404
    # the job types and their costs are the server's
    assert both["components"]["schemas"]["JobType"]["enum"] == ["summarise", "analyse"]
    assert "Costs 10 credits" in both["paths"]["/api/v1/summarise"]["post"]["description"]


def test_v1_is_marked_deprecated_when_configured(server_factory):
    server = server_factory(API_V1_DEPRECATED_AT="2027-01-01")
    doc = server.get("/openapi.json").json()
    assert doc["paths"]["/api/v1/users"]["get"]["deprecated"] is True
    assert "deprecated" not in doc["paths"]["/api/v2/users"]["get"]


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
    # The UI is pointed at this server's documents, one per version.
    init = [ref for ref in refs if ref.endswith(".js") and "swagger-ui" not in ref]
    script = server.get(init[0]).body.decode() if init else ""
    assert "/openapi/v1.json" in script and "/openapi/v2.json" in script
    bundle = server.get("/docs/swagger-ui-bundle.js")
    with open(os.path.join(WEB, "node_modules", "swagger-ui-dist", "swagger-ui-bundle.js"), "rb") as f:
        assert bundle.body == f.read()
    assert "max-age" in bundle.header("Cache-Control")


def test_docs_assets_are_a_closed_list(server):
    for name in ("openapi.json", "package.json", "..%2Fopenapi.json", "index.html", "swagger-ui.js"):
        r = server.get("/docs/" + name)
        assert r.status == 404, name
        assert r.header("Content-Type") == "application/problem+json"
