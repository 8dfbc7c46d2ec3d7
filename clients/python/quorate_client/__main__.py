"""Command line: `vectors` (self-check) and `submit` (sign, submit, follow). Prints one JSON
object; exit 0 = signed / all vectors pass, 2 = refused, 3 = not final yet, 1 = error."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .client import Client, Config
from .intent import Intent, IntentError
from .vectors import check

REPO = Path(__file__).resolve().parents[3]


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m quorate_client")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("vectors", help="check every intent vector")
    v.add_argument("--dir", type=Path, default=REPO / "core/tests/vectors")
    d = sub.add_parser("decode-status", help="decode a status as a failed call would carry it")
    d.add_argument("--code", required=True, help="gRPC code name, e.g. RESOURCE_EXHAUSTED")
    d.add_argument("--message", required=True)
    d.add_argument("--details-hex", default="", help="grpc-status-details-bin, hex")
    s = sub.add_parser("submit", help="sign, submit and follow one withdrawal")
    s.add_argument("--dir", type=Path, required=True, help="cluster directory with client.toml")
    s.add_argument("--coordinator", help="host:port instead of client.toml's list")
    s.add_argument("--proto", type=Path, default=REPO / "proto")
    s.add_argument("--id", required=True)
    s.add_argument("--chain", required=True)
    s.add_argument("--asset", required=True)
    s.add_argument("--to", required=True)
    s.add_argument("--amount", required=True)
    s.add_argument("--customer-ref")
    s.add_argument("--created-at-ms", type=int, help="default: now (a retry must reuse it)")
    s.add_argument("--ttl-ms", type=int, default=600_000)
    s.add_argument("--give-up-after-s", type=float, default=60.0)
    s.add_argument("--submit-timeout-s", type=float, default=30.0)
    s.add_argument("--watch-stream-s", type=float, default=30.0, help="deadline of one Watch stream")
    a = p.parse_args()
    if a.cmd == "vectors":
        report = check(a.dir)
        print(json.dumps(report))
        return 0 if not report["failures"] and report["checked"] > 0 else 1
    if a.cmd == "decode-status":
        print(json.dumps(decode_status(a.code, a.message, bytes.fromhex(a.details_hex))))
        return 0
    created = a.created_at_ms or int(time.time() * 1000)
    intent = Intent(a.id, a.chain, a.asset, a.to, a.amount, created, created + a.ttl_ms, a.customer_ref)
    try:
        intent = intent.normalized()
    except IntentError as e:
        print(json.dumps({"client": "python", "outcome": "invalid", "reason": str(e)}))
        return 2
    client = Client(Config.load(a.dir, a.coordinator), a.proto, a.watch_stream_s)
    report = client.submit(intent, a.give_up_after_s, a.submit_timeout_s)
    print(json.dumps(report))
    return {"signed": 0, "refused": 2, "needs-operator": 2, "error": 1}.get(report.get("outcome"), 3)


def decode_status(code: str, message: str, details: bytes) -> dict:
    """The refusal a call ending with these trailers reports (the same decoder as `submit`)."""
    import dataclasses

    import grpc

    from .client import Refusal, classify

    class Call(grpc.RpcError):
        def code(self):
            return grpc.StatusCode[code]

        def details(self):
            return message

        def trailing_metadata(self):
            return (("grpc-status-details-bin", details),) if details else ()

    return {**dataclasses.asdict(Refusal.of(Call())), "class": classify(grpc.StatusCode[code])}


if __name__ == "__main__":
    sys.exit(main())
