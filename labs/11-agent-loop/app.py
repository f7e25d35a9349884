"""The help desk's web front: GET /ask?question=...&customer=123 runs the agent.

Nothing to change here: your work is in agent.py. The answer shows the
agent's own ledger, every model call with its tokens and cost, which the
check compares with what your spans say.
"""

import os
from dataclasses import asdict

from flask import Flask, jsonify, request

import agent
from telemetry import setup_tracing

app = Flask(__name__)
setup_tracing(app)


@app.get("/ask")
def ask():
    question = request.args.get("question", "why is my driver late?")
    customer = request.args.get("customer", "123")
    answer, iterations, ledger = agent.ask(question, customer)
    return jsonify(answer=answer, iterations=iterations, calls=[asdict(c) for c in ledger],
                   cost_usd=round(sum(c.cost_usd for c in ledger), 9))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5010")), threaded=True)
