"""A small local OpenID provider for the sign-in tests (127.0.0.1 only).

Real RS256 keys (python3-cryptography), real ID tokens (python3-jwt). Serves
discovery, a JWKS with Cache-Control, an authorization endpoint that
redirects back with a code, a token endpoint that checks the client (Basic or
form, as its discovery document offers), the redirect URI and the PKCE S256
verifier, and a userinfo endpoint for the access tokens it issued. The test
controls the claims of the next ID token (`next_claims`, None deletes a
claim), which claims only userinfo gives, the signing key (kid rotation), the
JWKS max-age and a delay on the token endpoint.
"""
import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "nexus-test-client.apps.example"
CLIENT_SECRET = "nexus-test-client-secret"


def _b64u_uint(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Provider:
    def __init__(self, issuer=None):
        self.issuer = issuer  # None: its own URL, as OpenID Discovery 4.3 wants
        self.discovery_issuer = None  # the discovery document's when set ("" leaves it out)
        self.keys = {}          # kid -> private key
        self.published = []     # kids served in the JWKS
        self.kid = None         # kid signing the next ID tokens
        self.rotate()
        self.client_secret = CLIENT_SECRET
        self.token_auth_methods = None  # token_endpoint_auth_methods_supported; None: absent
        self.token_auth_used = []       # the client authentication of each token request
        self.userinfo_only = set()  # claims left out of ID tokens, served by userinfo only
        self.userinfo_sub = None    # a sub for userinfo to answer with instead of the token's
        self.userinfo = {}          # access token -> the claims userinfo answers with
        self.userinfo_requests = 0
        self.authorize_error = None  # (error, description): the next authorizations fail so
        self.send_iss = False        # RFC 9207: add iss to the redirect back
        self.callback_iss = None     # the iss sent when not the provider's own
        self.iss_param_supported = False  # advertised in the discovery document
        self.jwks_max_age = 3600
        self.jwks_cache_control = None  # overrides the max-age header when set
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.token_delay = 0.0
        self.next_claims = {}   # merged into the next redirect-flow ID token
        self.codes = {}
        self.token_requests = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.issuer = self.issuer or self.base
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def discovery_url(self):
        return self.base + "/.well-known/openid-configuration"

    def env(self):
        return {"GOOGLE_CLIENT_ID": CLIENT_ID, "GOOGLE_CLIENT_SECRET": self.client_secret,
                "GOOGLE_DISCOVERY_URL": self.discovery_url}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- keys -------------------------------------------------------------
    def rotate(self, keep_old=False, publish=True):
        """A new signing key with a new kid; returns the kid."""
        kid = "k" + secrets.token_hex(4)
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published = (self.published if keep_old else []) + [kid]
        self.kid = kid
        return kid

    def jwks(self):
        out = []
        for kid in self.published:
            pub = self.keys[kid].public_key().public_numbers()
            out.append({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                        "n": _b64u_uint(pub.n), "e": _b64u_uint(pub.e)})
        return {"keys": out}

    # ---- tokens -----------------------------------------------------------
    def claims(self, sub=None, email=None, hd=None, _drop=(), **over):
        """Google-like claims; a None in over deletes that claim, and so does
        naming it in _drop (for sub, email and hd)."""
        now = int(time.time())
        sub = sub or str(secrets.randbelow(10**20))
        c = {"iss": self.issuer, "aud": CLIENT_ID, "azp": CLIENT_ID, "sub": sub,
             "email": email or f"user{sub[-6:]}@gmail.com", "email_verified": True,
             "name": "Test User", "picture": "https://example.test/p.png",
             "iat": now, "exp": now + 3600}
        if hd:
            c["hd"] = hd
        for k, v in over.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        for k in _drop:
            c.pop(k, None)
        return c

    def id_token(self, claims=None, kid=None, headers=None, **kw):
        c = claims if claims is not None else self.claims(**kw)
        kid = kid or self.kid
        h = {"kid": kid}
        h.update(headers or {})
        return jwt.encode(c, self.keys[kid], algorithm="RS256", headers=h)

    # ---- HTTP -------------------------------------------------------------
    def _handler(self):
        prov = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _json(self, status, obj, cache=None):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if cache:
                    self.send_header("Cache-Control", cache)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                if u.path == "/.well-known/openid-configuration":
                    with prov.lock:
                        prov.discovery_fetches += 1
                    iss = prov.issuer if prov.discovery_issuer is None else prov.discovery_issuer
                    return self._json(200, {
                        **({"issuer": iss} if iss else {}),
                        "authorization_endpoint": prov.base + "/authorize",
                        "token_endpoint": prov.base + "/token",
                        "jwks_uri": prov.base + "/jwks",
                        "userinfo_endpoint": prov.base + "/userinfo",
                        "authorization_response_iss_parameter_supported":
                            prov.iss_param_supported,
                        "id_token_signing_alg_values_supported": ["RS256"],
                        **({"token_endpoint_auth_methods_supported": prov.token_auth_methods}
                           if prov.token_auth_methods is not None else {})},
                        cache="public, max-age=3600")
                if u.path == "/userinfo":
                    auth = self.headers.get("Authorization", "")
                    with prov.lock:
                        prov.userinfo_requests += 1
                        claims = prov.userinfo.get(auth[7:]) if auth.startswith("Bearer ") else None
                    if claims is None:
                        return self._json(401, {"error": "invalid_token"})
                    return self._json(200, claims)
                if u.path == "/jwks":
                    with prov.lock:
                        prov.jwks_fetches += 1
                    return self._json(200, prov.jwks(), cache=prov.jwks_cache_control or
                                      f"public, max-age={prov.jwks_max_age}, must-revalidate")
                if u.path == "/authorize":
                    need = ("response_type", "client_id", "redirect_uri", "scope", "state",
                            "nonce", "code_challenge", "code_challenge_method")
                    if any(k not in q for k in need) or q["response_type"] != "code" or \
                            q["client_id"] != CLIENT_ID or q["code_challenge_method"] != "S256" or \
                            set(q["scope"].split()) != {"openid", "email", "profile"}:
                        return self._json(400, {"error": "invalid_request", "got": q})
                    code = secrets.token_urlsafe(24)
                    with prov.lock:
                        claims = dict(prov.next_claims)
                        prov.codes[code] = {"challenge": q["code_challenge"], "nonce": q["nonce"],
                                            "redirect_uri": q["redirect_uri"], "claims": claims}
                    back = {"code": code, "state": q["state"]}
                    if prov.authorize_error:
                        back = {"error": prov.authorize_error[0], "state": q["state"]}
                        if prov.authorize_error[1]:
                            back["error_description"] = prov.authorize_error[1]
                    if prov.send_iss:
                        back["iss"] = prov.callback_iss or prov.issuer
                    loc = q["redirect_uri"] + "?" + urllib.parse.urlencode(back)
                    self.send_response(302)
                    self.send_header("Location", loc)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self._json(404, {"error": "not_found"})

            def _client_ok(self, form):
                """RFC 6749 2.3.1: Basic (the default of OpenID Discovery) or
                the secret in the form, whichever the document offers."""
                offered = prov.token_auth_methods
                if offered is None:
                    offered = ["client_secret_basic"]
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    cid, secret = urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(pw)
                    method = "client_secret_basic"
                    if "client_secret" in form or form.get("client_id", cid) != cid:
                        method = "mixed"
                else:
                    cid, secret = form.get("client_id"), form.get("client_secret")
                    method = "client_secret_post"
                with prov.lock:
                    prov.token_auth_used.append(method)
                return method in offered and cid == CLIENT_ID and secret == prov.client_secret

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                if urllib.parse.urlsplit(self.path).path != "/token":
                    return self._json(404, {"error": "not_found"})
                with prov.lock:
                    prov.token_requests.append(form)
                    entry = prov.codes.pop(form.get("code", ""), None)
                if prov.token_delay:
                    time.sleep(prov.token_delay)
                if form.get("grant_type") != "authorization_code" or entry is None:
                    return self._json(400, {"error": "invalid_grant"})
                if not self._client_ok(form):
                    return self._json(401, {"error": "invalid_client"})
                if form.get("redirect_uri") != entry["redirect_uri"]:
                    return self._json(400, {"error": "invalid_grant", "why": "redirect_uri"})
                verifier = form.get("code_verifier", "")
                digest = hashlib.sha256(verifier.encode()).digest()
                if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != entry["challenge"]:
                    return self._json(400, {"error": "invalid_grant", "why": "pkce"})
                over = dict(entry["claims"])
                kid = over.pop("_kid", None)
                over = dict({"nonce": entry["nonce"]}, **over)
                claims = prov.claims(**over)
                access = "ya29." + secrets.token_urlsafe(16)
                profile = {k: v for k, v in claims.items() if k in (
                    "sub", "email", "email_verified", "name", "picture", "hd")}
                if prov.userinfo_sub:
                    profile["sub"] = prov.userinfo_sub
                with prov.lock:
                    prov.userinfo[access] = profile
                tok = prov.id_token({k: v for k, v in claims.items()
                                     if k not in prov.userinfo_only}, kid=kid)
                return self._json(200, {"access_token": access, "token_type": "Bearer",
                                        "expires_in": 3599, "id_token": tok,
                                        "scope": "openid email profile"})
        return H
