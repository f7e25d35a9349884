"""The accounts service: GET /account/<id> answers with a customer's account.

Nothing to change here; the quest is in collector.yaml. Like many real
services, this one records the customer's e-mail address on its spans
(user.email): handy when debugging, and personal data that should never
reach the trace store. Code you do not own is hard to change, so the
collector, which every span passes through, is where to scrub it.
"""

import os

from flask import Flask, abort, jsonify
from opentelemetry import trace

from telemetry import setup_tracing

ACCOUNTS = {
    "1": {"email": "ada@example.com", "plan": "pro"},
    "2": {"email": "grace@example.org", "plan": "free"},
    "3": {"email": "edsger@example.net", "plan": "team"},
}

tracer = trace.get_tracer("accounts")
app = Flask(__name__)
setup_tracing(app)


@app.get("/account/<account_id>")
def account(account_id: str):
    request_span = trace.get_current_span()  # the SERVER span of this request
    with tracer.start_as_current_span("load account") as span:
        span.set_attribute("account.id", account_id)
        record = ACCOUNTS.get(account_id)
        if record is None:
            abort(404)
        span.set_attribute("account.plan", record["plan"])
        span.set_attribute("user.email", record["email"])
    request_span.set_attribute("user.email", record["email"])
    return jsonify(id=account_id, **record)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5007")))
