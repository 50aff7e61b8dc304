"""The Flask peer of `cargo xtask bench-serve`: the same prediction-set read as carelens'
GET /api/v1/patients/{id}/predictions, from the same SQLite store, doing the same work per
request: a bearer-token check, the access check (patient exists, an appointment with the
doctor's practice or a consent grant), one audit row appended in a write transaction (hash
chained like carelens' own), the latest prediction set and the doctor's feedback, turned into
the same response JSON.

Run with gunicorn (one sync worker per core):
    CARELENS_DB=... PEER_TOKEN=... PEER_PROVIDER=... PEER_USER=... gunicorn -w 2 flask_peer:app
"""

import hashlib
import hmac
import json
import os
import sqlite3
from datetime import datetime, timezone

from flask import Flask, g, jsonify, request

app = Flask(__name__)
DB = os.environ["CARELENS_DB"]
TOKEN = os.environ["PEER_TOKEN"]
PROVIDER = os.environ["PEER_PROVIDER"]
USER = os.environ["PEER_USER"]


def db():
    if "db" not in g:
        conn = sqlite3.connect(DB, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS peer_audit (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, patient_id TEXT, body TEXT NOT NULL)"
        )
        g.db = conn
    return g.db


def error(status, code, message):
    return jsonify({"error": {"code": code, "message": message}}), status


def band(b):
    return b


def view(s, feedback):
    patient = s["patient"]
    preds = []
    for d in s["predictions"]:
        if d["code"].startswith("F"):
            continue  # mental health needs consent, as in carelens
        heatmaps, features = [], []
        for e in d.get("evidence", []):
            detail = e.get("detail") or {}
            if e["kind"] == "heatmap" and e.get("object_key"):
                digest = e["object_key"].rsplit("/", 1)[-1]
                heatmaps.append({
                    "url": f"/api/v1/patients/{patient}/evidence/{digest}",
                    "model": detail.get("model", ""),
                    "label": detail.get("label", ""),
                    "method": detail.get("method", ""),
                    "max_logit_drop": detail.get("max_logit_drop"),
                })
            elif e["kind"] == "features":
                features.append({
                    "model": detail.get("model", ""),
                    "method": detail.get("method", ""),
                    "features": [
                        {"feature": f.get("feature", ""), "value": f.get("value"), "log_odds": f.get("log_odds", 0.0),
                         "direction": f.get("direction", "")}
                        for f in detail.get("features", [])
                    ],
                })
        verdict = None
        for f in reversed(feedback):
            if f["set_version"] == s["version"] and f["code"] == d["code"]:
                verdict = f["verdict"]
                break
        p = {
            "code": d["code"],
            "display": d["display"],
            "probability": d["probability"],
            "risk_band": band(d["risk_band"]),
            "known": d["known"],
            "sources": [
                {"model": x["model"]["name"], "version": x["model"]["version"], "label": x.get("label", ""),
                 "probability": x["probability"], "contribution": x.get("contribution")}
                for x in d["sources"]
            ],
            "heatmaps": heatmaps,
            "features": features,
        }
        if d.get("threshold") is not None:
            p["threshold"] = d["threshold"]
        if verdict:
            p["feedback"] = verdict
        preds.append(p)
    preds.sort(key=lambda p: (p["known"], -p["probability"]))
    return {
        "id": s["id"],
        "patient": patient,
        "version": s["version"],
        "created_at": s["created_at"],
        "models": [{"name": m["name"], "version": m["version"]} for m in s["models"]],
        "fusion": s["fusion"],
        "input_fingerprint": s["input_fingerprint"],
        "predictions": preds,
    }


def audit(conn, patient, outcome, reason):
    at = datetime.now(timezone.utc).isoformat()
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT seq, body FROM peer_audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0] + 1, json.loads(row[1])["hash"]) if row else (1, "0" * 64)
        entry = {"seq": seq, "at": at, "actor": {"role": "doctor", "id": USER}, "action": "read", "patient": patient,
                 "resource": "predictions", "outcome": outcome, "reason": reason, "prev_hash": prev}
        entry["hash"] = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
        conn.execute("INSERT INTO peer_audit (seq, at, patient_id, body) VALUES (?, ?, ?, ?)",
                     (seq, at, patient, json.dumps(entry)))
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise


@app.get("/api/v1/patients/<pid>/predictions")
def predictions(pid):
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not hmac.compare_digest(auth[7:], TOKEN):
        return error(401, "invalid_token", "the token is malformed or not signed by this server")
    conn = db()
    now = datetime.now(timezone.utc).isoformat()
    in_care = any(
        b["provider"] == PROVIDER and b["status"] != "cancelled"
        for (b,) in ((json.loads(r[0]),) for r in conn.execute("SELECT body FROM appointments WHERE patient_id = ?", (pid,)))
    )
    consented = any(
        b["grantee"] == {"type": "provider", "id": PROVIDER} and "diagnosis" in b["categories"]
        and b["valid_from"] <= now and not b.get("revoked_at")
        for b in (json.loads(r[0]) for r in conn.execute("SELECT body FROM consents WHERE patient_id = ?", (pid,)))
    )
    if not (in_care or consented):
        audit(conn, pid, "denied", "not_in_care")
        return error(403, "not_in_care", "this patient has no appointment with your practice and has not granted it consent")
    if conn.execute("SELECT 1 FROM patients WHERE id = ?", (pid,)).fetchone() is None:
        return error(404, "patient_not_found", "no patient has this Health ID")
    audit(conn, pid, "allowed", "care_relationship" if in_care else "consent")
    row = conn.execute("SELECT body FROM prediction_sets WHERE patient_id = ? ORDER BY version DESC LIMIT 1", (pid,)).fetchone()
    if row is None:
        return error(404, "no_prediction_set", "the patient has no prediction set yet")
    feedback = [json.loads(r[0]) for r in conn.execute("SELECT body FROM feedback WHERE patient_id = ? ORDER BY at, id", (pid,))]
    feedback = [f for f in feedback if f["doctor"] == USER]
    return jsonify(view(json.loads(row[0]), feedback))
