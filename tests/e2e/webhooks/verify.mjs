// Verifies webhook signatures with Standard Webhooks' own library
// (npm "standardwebhooks", pinned in package-lock.json), never with
// NexusAPI's code. One JSON object per input line:
//   {"secret": "whsec_...", "headers": {"webhook-id": ...}, "body_b64": "..."}
// and one output line per input: "ok" or "fail <reason>".
import { createInterface } from "node:readline";
import { Webhook } from "standardwebhooks";

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let out;
  try {
    const m = JSON.parse(line);
    const body = Buffer.from(m.body_b64, "base64");
    new Webhook(m.secret).verify(body, m.headers);
    out = "ok";
  } catch (e) {
    out = "fail " + String(e && e.message ? e.message : e).replace(/\s+/g, " ");
  }
  process.stdout.write(out + "\n");
}
