"""A real SMTP server for the end-to-end tests (aiosmtpd), on 127.0.0.1:PORT.

Every message it accepts is parsed (RFC 5322 with the stdlib), its text/calendar part is
parsed with `icalendar`, and a JSON summary is written to OUT_DIR/<n>.json:
{"to", "from", "subject", "message_id", "text", "ics": {"method", "uid", "dtstart",
"dtend", "summary", "location", "status"} or null, "ics_error": str or null}.

Usage: python smtp_sink.py PORT OUT_DIR   (prints READY when listening; stops on stdin EOF)
"""

import email
import email.policy
import json
import os
import sys

from aiosmtpd.controller import Controller
from icalendar import Calendar


def summarise(raw: bytes) -> dict:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = {
        "to": msg["To"],
        "from": msg["From"],
        "subject": msg["Subject"],
        "message_id": msg["Message-ID"],
        "text": None,
        "ics": None,
        "ics_error": None,
    }
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "text/plain" and out["text"] is None:
            out["text"] = part.get_content()
        elif ctype == "text/calendar":
            try:
                data = part.get_payload(decode=True)
                cal = Calendar.from_ical(data)
                events = [c for c in cal.walk() if c.name == "VEVENT"]
                if len(events) != 1:
                    raise ValueError(f"{len(events)} VEVENTs")
                ev = events[0]
                for required in ("UID", "DTSTAMP", "DTSTART", "DTEND"):
                    if required not in ev:
                        raise ValueError(f"VEVENT without {required}")
                out["ics"] = {
                    "method": str(cal.get("METHOD")),
                    "version": str(cal.get("VERSION")),
                    "uid": str(ev["UID"]),
                    "dtstart": ev.decoded("DTSTART").isoformat(),
                    "dtend": ev.decoded("DTEND").isoformat(),
                    "summary": str(ev.get("SUMMARY")),
                    "location": str(ev.get("LOCATION")),
                    "status": str(ev.get("STATUS")),
                    "content_type": part["Content-Type"],
                }
            except Exception as e:  # reported to the test, which fails on it
                out["ics_error"] = f"{type(e).__name__}: {e}"
    return out


class Sink:
    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.n = len([f for f in os.listdir(out_dir) if f.endswith(".json")])

    async def handle_DATA(self, server, session, envelope):
        summary = summarise(envelope.content)
        summary["envelope_to"] = envelope.rcpt_tos
        self.n += 1
        path = os.path.join(self.out_dir, f"{self.n:04}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(summary, f)
        os.replace(path + ".tmp", path)
        return "250 Message accepted for delivery"


def main() -> None:
    port, out_dir = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    controller = Controller(Sink(out_dir), hostname="127.0.0.1", port=port)
    controller.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
