"""The operators' files in deploy/: the alert rules pass `promtool check
rules` and their tests (`promtool test rules`) prove each alert fires and
stays quiet when it should; the Grafana dashboard is valid JSON whose every
query parses as PromQL; and every metric the rules and the dashboard name
is one the binary serves."""
import json
import os
import re

import pytest

import harness
from jobs_util import wait_for
from metrics_util import promtool, write_temp

DEPLOY = os.path.join(harness.ROOT, "deploy")
RULES = os.path.join(DEPLOY, "prometheus", "alerts.yml")
RULE_TESTS = os.path.join(DEPLOY, "prometheus", "alerts_test.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "nexusapi.json")
ALERTS = ["NexusAPIDatabaseDown", "NexusAPIHigh5xxRatio", "NexusAPIJobQueueStuck",
          "NexusAPIRefundSpike", "NexusAPIWebhookFailureRatio", "NexusAPIRateLimitRefusals"]
METRIC = re.compile(r"\b((?:nexusapi|process)_[a-z_]+)")


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_rules_pass_promtool_check():
    rc, out = promtool("check", "rules", RULES)
    assert rc == 0, out
    assert f"SUCCESS: {len(ALERTS)} rules found" in out


def test_each_alert_fires_in_the_rule_tests():
    rc, out = promtool("test", "rules", RULE_TESTS)
    assert rc == 0, out
    assert "SUCCESS" in out
    text = open(RULE_TESTS).read()
    for alert in ALERTS:  # each is expected to fire somewhere, not only to stay quiet
        fires = re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", text)
        assert fires, f"no rule test makes {alert} fire"


def test_dashboard_queries_are_promql():
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e.replace("$instance", ".*")}
        for i, e in enumerate(exprs)]}]}
    path = write_temp(json.dumps(rules), ".yml")  # JSON is YAML
    try:
        rc, out = promtool("check", "rules", path)
    finally:
        os.unlink(path)
    assert rc == 0, out


def test_rules_and_dashboard_name_only_served_metrics(server_factory, db):
    server = server_factory(WORKER_CONCURRENCY=1, JOB_POLL_INTERVAL_MS=200)
    text = wait_for(lambda: (lambda t: t if "nexusapi_jobs_queue_depth " in t else None)(
        server.get("/metrics").body.decode()), 30, what="the queue gauges")
    served = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    for suffix in ("_bucket", "_sum", "_count"):
        served |= {n + suffix for n in served}
    named = set(METRIC.findall(open(RULES).read()))
    for e in dashboard_exprs():
        named |= set(METRIC.findall(e))
    assert named and named <= served, sorted(named - served)
