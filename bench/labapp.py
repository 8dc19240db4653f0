"""The in-line alternative the parallel benchmark compares against: a Flask app that runs a `laboratory` experiment.

`laboratory.Experiment` (the Python port of GitHub's Scientist) runs the control (legacy) and the candidate (cloud)
one after the other on the caller's request, then returns the control's value: the caller waits for both.
Served by gunicorn from `bench.labapp:create_app_from_env()`; LAB_LEGACY_URL and LAB_CLOUD_URL are read then.
"""

from __future__ import annotations

import os
from typing import Any

import laboratory
import requests
from flask import Flask, Response, jsonify


class Recorded(laboratory.Experiment):  # type: ignore[misc]
    """An experiment whose results are counted, as a publisher would, instead of being thrown away."""

    matches = 0
    mismatches = 0

    def publish(self, result: Any) -> None:
        if result.match:
            Recorded.matches += 1
        else:
            Recorded.mismatches += 1


def create_app(legacy_url: str, cloud_url: str) -> Flask:
    """Return the app: GET /v1/accounts/<id>/balance answers legacy's balance after running cloud as the candidate."""
    app = Flask("bench.labapp")
    legacy, cloud = requests.Session(), requests.Session()
    for session in (legacy, cloud):
        session.trust_env = False

    def from_legacy(account_id: str) -> dict[str, Any]:
        body = legacy.get(f"{legacy_url}/CBS/ACCT/BAL", params={"ACCTNO": account_id.zfill(10)}, timeout=5).json()
        return {"account_id": account_id, "currency": body["CCY"], "balance": f"{body['CURBAL'] / 100:.2f}"}

    def from_cloud(account_id: str) -> dict[str, Any]:
        body = cloud.get(f"{cloud_url}/v1/accounts/{account_id}/balance", timeout=5).json()
        return {"account_id": body["account_id"], "currency": body["currency"], "balance": body["balance"]}

    @app.get("/v1/accounts/<account_id>/balance")
    def balance(account_id: str) -> Response:
        experiment = Recorded(name="accounts.balance")
        experiment.control(from_legacy, args=[account_id])
        experiment.candidate(from_cloud, args=[account_id])
        return jsonify(experiment.conduct())

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok", "matches": Recorded.matches, "mismatches": Recorded.mismatches})

    return app


def create_app_from_env() -> Flask:
    """Build the app from LAB_LEGACY_URL and LAB_CLOUD_URL (read now, not at import)."""
    return create_app(os.environ["LAB_LEGACY_URL"], os.environ["LAB_CLOUD_URL"])
