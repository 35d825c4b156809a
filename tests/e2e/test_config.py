"""Configuration through the real binary: one-line errors with exit 2,
secrets never printed, and .env.example documenting every setting."""
import os
import re

import pytest

import harness

ROOT = harness.ROOT


def config(env, cwd=None):
    return harness.run_cli(["config"], env, cwd=cwd)


@pytest.mark.parametrize("name,value,words", [
    ("PORT", "eighty", "integer"),
    ("PORT", "99999", "between 0 and 65535"),
    ("HTTP_THREADS", "0", "between"),
    ("DEBUG", "perhaps", "true or false"),
    ("JWT_ALGORITHM", "none", "HS256"),
    ("JWT_EXPIRATION_MINUTES", "0", "between"),
    ("LOG_LEVEL", "chatty", "one of"),
    ("LOG_FORMAT", "xml", "one of"),
    ("AI_PROVIDER", "openai", "one of"),
    ("PUBLIC_URL", "localhost:8000", "URL"),
    ("WEBHOOK_ALLOW_NETWORKS", "10.0.0.1/8", "is not a network"),
    ("WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8,2130706433", "2130706433"),
    ("WEBHOOK_TIMEOUT_SECONDS", "0", "between 1 and 60"),
    ("JWT_SECRET_KEY", "too-short", "at least 32 bytes"),
    ("JWT_SECRET_KEY", "change-me-in-production-use-strong-secret", "placeholder"),
])
def test_bad_setting_is_one_line_exit_2(name, value, words, tmp_path):
    env = harness.base_env(**{name: value})
    r = config(env, cwd=str(tmp_path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert name in lines[0] and words in lines[0]
    if name == "JWT_SECRET_KEY":
        assert value not in r.stderr


def test_placeholder_secret_allowed_in_debug(tmp_path):
    env = harness.base_env(JWT_SECRET_KEY="change-me-in-production-use-strong-secret", DEBUG="true")
    assert config(env, cwd=str(tmp_path)).returncode == 0


@pytest.mark.parametrize("secret", ["change-me-in-production-use-strong-secret", "too-short"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
def test_issue11_debug_keeps_the_secret_check_off_loopback(secret, host, tmp_path):
    """DEBUG=true used to skip the JWT secret check wherever the server
    listened; off loopback a weak secret is refused as without DEBUG."""
    r = config(harness.base_env(JWT_SECRET_KEY=secret, DEBUG="true", HOST=host),
               cwd=str(tmp_path))
    assert r.returncode == 2, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "JWT_SECRET_KEY" in lines[0] and "loopback" in lines[0], r.stderr
    assert secret not in r.stderr


def test_issue11_debug_on_loopback_warns_of_a_weak_secret(server_factory):
    server = server_factory(DEBUG="true", JWT_SECRET_KEY="change-me-in-production-use-strong-secret")
    assert server.get("/health").status == 200
    warned = [l for l in server.log_lines()
              if l.get("level") == "warn" and l.get("msg", "").startswith("JWT_SECRET_KEY is weak")]
    assert warned and warned[0]["host"] == "127.0.0.1", server.log()[-2000:]
    assert "change-me" not in server.log()


def test_bad_dotenv_value_is_reported(tmp_path):
    (tmp_path / ".env").write_text("PORT=not-a-port\n")
    r = config(harness.base_env(), cwd=str(tmp_path))
    assert r.returncode == 2 and "PORT" in r.stderr


def test_secrets_never_printed(tmp_path):
    env = harness.base_env(JWT_SECRET_KEY="s3cr3t-" + "x" * 40,
                           DATABASE_URL="postgresql://owner:hunter2@127.0.0.1/x",
                           GOOGLE_CLIENT_SECRET="gcs-hidden", GEMINI_API_KEY="gem-hidden")
    r = config(env, cwd=str(tmp_path))
    assert r.returncode == 0
    for secret in ("s3cr3t", "hunter2", "gcs-hidden", "gem-hidden"):
        assert secret not in r.stdout + r.stderr


def test_env_example_documents_every_setting(tmp_path):
    r = config(harness.base_env(), cwd=str(tmp_path))
    names = re.findall(r"^([A-Z_]+)=", r.stdout, re.M)
    assert len(names) > 20
    example = open(os.path.join(ROOT, ".env.example")).read()
    documented = set(re.findall(r"^#?([A-Z_]+)=", example, re.M))
    assert set(names) == documented


def test_unknown_verb_exit_2():
    r = harness.run_cli(["frobnicate"], harness.base_env())
    assert r.returncode == 2 and "unknown verb" in r.stderr
