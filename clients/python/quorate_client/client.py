"""Submitting and following withdrawals: mutual TLS, failover, and every refusal class.

Stubs are generated from the project's own .proto files at run time (grpcio-tools) into a
temporary directory, so they always match the proto they were made from and nothing
generated is committed.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Optional

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from .intent import Intent, sign_digest

RULE_TRAILER = "quorate-rule"

# What to do after each gRPC status code (docs/intent.md, "Retries and idempotency").
PERMANENT = {
    grpc.StatusCode.PERMISSION_DENIED,  # policy or signature: the same request is refused again
    grpc.StatusCode.ALREADY_EXISTS,  # withdrawal-id-conflict: the id is bound to another intent
    grpc.StatusCode.INVALID_ARGUMENT,  # a field is malformed (intent-invalid)
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.OUT_OF_RANGE,
}
OPERATOR = {grpc.StatusCode.FAILED_PRECONDITION}  # e.g. no-group-key: the cluster is not ready
WAIT = {grpc.StatusCode.RESOURCE_EXHAUSTED}  # a velocity window: retry when it frees up
# Everything else (UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN, CANCELLED, ABORTED, INTERNAL,
# DATA_LOSS) is resent with the same bytes; these also move to the next coordinator.
FAILOVER = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED}


def classify(code: grpc.StatusCode) -> str:
    if code in PERMANENT:
        return "permanent"
    if code in OPERATOR:
        return "operator"
    if code in WAIT:
        return "wait"
    return "resend"


def load_stubs(proto_dir: Path):
    """Generates the withdrawal service's Python stubs from `proto_dir` and imports them."""
    from grpc_tools import protoc  # imported here: only this needs grpcio-tools

    out = Path(tempfile.mkdtemp(prefix="quorate-stubs-"))
    rc = protoc.main(
        [
            "protoc",
            f"-I{proto_dir}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(proto_dir / "quorate/withdrawal/v1/withdrawal.proto"),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"protoc failed on {proto_dir}")
    sys.path.insert(0, str(out))
    pb = importlib.import_module("quorate.withdrawal.v1.withdrawal_pb2")
    rpc = importlib.import_module("quorate.withdrawal.v1.withdrawal_pb2_grpc")
    return pb, rpc


@dataclasses.dataclass
class Config:
    """`client.toml` of a cluster directory (paths relative to it)."""

    endpoints: list  # [(address, server_name)], `coordinator` first
    ca: bytes
    cert: bytes
    key: bytes = dataclasses.field(repr=False)  # the TLS private key: never printed
    signing_key_hex: str = dataclasses.field(repr=False)

    @staticmethod
    def load(cluster_dir: Path, coordinator: Optional[str] = None) -> "Config":
        doc = tomllib.loads((cluster_dir / "client.toml").read_text())
        backend = doc.get("backend")
        if not backend:
            raise SystemExit("client.toml has no [backend] section: not a backend host")
        endpoints = [(doc["coordinator"], doc["server_name"])]
        endpoints += [(o["address"], o["server_name"]) for o in doc.get("other_coordinators", [])]
        if coordinator:
            endpoints = [(coordinator, doc["server_name"])]
        read = lambda p: (cluster_dir / p).read_bytes()  # noqa: E731 (absolute paths stay absolute)
        return Config(
            endpoints=endpoints,
            ca=read(doc["ca"]),
            cert=read(backend["cert"]),
            key=read(backend["key"]),
            signing_key_hex=read(backend["signing_key"]).decode().strip(),
        )


@dataclasses.dataclass
class Refusal:
    """What a failed call says: the code, the rule, and the google.rpc details if present."""

    code: str
    rule: str
    message: str
    error_info: Optional[dict] = None
    retry_delay_ms: Optional[int] = None

    @staticmethod
    def of(e: grpc.RpcError) -> "Refusal":
        trailers = dict(e.trailing_metadata() or ())
        r = Refusal(code=e.code().name, rule=str(trailers.get(RULE_TRAILER, "")), message=e.details() or "")
        try:
            status = rpc_status.from_call(e)  # grpc-status-details-bin, checked against the call
        except ValueError:
            status = None
        for detail in status.details if status else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                r.error_info = {"reason": info.reason, "domain": info.domain, "metadata": dict(info.metadata)}
                r.rule = r.rule or info.reason
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                ri = error_details_pb2.RetryInfo()
                detail.Unpack(ri)
                r.retry_delay_ms = ri.retry_delay.seconds * 1000 + ri.retry_delay.nanos // 1_000_000
        if not r.rule and ":" in r.message:
            r.rule = r.message.split(":", 1)[0]  # the message starts with the rule tag
        return r


class Client:
    """A backend's connection to a cluster: one channel per coordinator, opened on demand."""

    def __init__(self, config: Config, proto_dir: Path, watch_stream_s: float = 30.0):
        self.config = config
        self.watch_stream_s = watch_stream_s
        self.pb, self.rpc = load_stubs(proto_dir)
        self._stubs: dict = {}

    def stub(self, i: int):
        if i not in self._stubs:
            address, server_name = self.config.endpoints[i]
            creds = grpc.ssl_channel_credentials(
                root_certificates=self.config.ca,
                private_key=self.config.key,
                certificate_chain=self.config.cert,
            )
            channel = grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", server_name)])
            self._stubs[i] = self.rpc.WithdrawalServiceStub(channel)
        return self._stubs[i]

    def request(self, intent: Intent):
        """The signed request; resend exactly this object on every retry."""
        i = intent.normalized()
        terms = None
        if i.solana is not None:
            terms = self.pb.SolanaTerms(**dataclasses.asdict(i.solana))
        wire = self.pb.Intent(
            id=i.id,
            chain=i.chain,
            asset=i.asset,
            destination=i.destination,
            amount=i.amount,
            created_at_ms=i.created_at_ms,
            expires_at_ms=i.expires_at_ms,
            customer_ref=i.customer_ref or "",
            solana=terms,
        )
        return self.pb.SubmitRequest(intent=wire, backend_signature=sign_digest(self.config.signing_key_hex, i.digest()))

    def watch(self, i: int, wid: str, until: float, report: dict):
        """Follows `wid` on coordinator `i` until it is final or `until` passes; returns the
        last record seen, or None if the coordinator cannot be reached (resubmit elsewhere).

        Watch streams changes from the moment it is subscribed, so each (re)subscription waits
        for the response headers (the server has subscribed) and then reads the current state
        with Get: nothing that happened in between is missed."""
        last = None
        while time.time() < until:
            call = self.stub(i).Watch(self.pb.WatchRequest(id=wid), timeout=max(0.1, min(self.watch_stream_s, until - time.time())))
            try:
                call.initial_metadata()
                last = self.stub(i).Get(self.pb.GetRequest(id=wid), timeout=10)
                if self.final(last):
                    call.cancel()
                    return last
                # Progress for whoever runs this (stdout carries only the final report).
                print(json.dumps({"event": "watching", "id": wid, "status": self.pb.Status.Name(last.status)}), file=sys.stderr, flush=True)
                for w in call:
                    last = w
                    if self.final(w):
                        call.cancel()
                        report["via"] = "watch"
                        return w
            except grpc.RpcError as e:
                code = e.code()
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND) and last is None:
                    return None
                if code not in (
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.DATA_LOSS,  # fell behind: re-read and watch again
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.CANCELLED,
                ):
                    raise
            report["watch_resumptions"] = report.get("watch_resumptions", 0) + 1
        return last

    def final(self, w) -> bool:
        s = self.pb.Status
        return w.status in (s.STATUS_SIGNED, s.STATUS_REFUSED, s.STATUS_FAILED, s.STATUS_EXPIRED)

    def submit(self, intent: Intent, give_up_after_s: float, submit_timeout_s: float) -> dict:
        """Submits and follows one withdrawal, acting on every refusal class; returns a report."""
        request = self.request(intent)
        digest = intent.digest()
        report: dict = {
            "client": "python",
            "id": intent.id,
            "digest": digest.hex(),
            "encoding": intent.encode().hex(),
            "created_at_ms": intent.created_at_ms,
            "expires_at_ms": intent.expires_at_ms,
            "attempts": [],
            "via": "submit",
        }
        until = min(time.time() + give_up_after_s, intent.expires_at_ms / 1000)
        n = len(self.config.endpoints)
        at, backoff = 0, 0.2
        while True:
            try:
                w = self.stub(at).Submit(request, timeout=max(0.05, min(submit_timeout_s, until - time.time())))
                report["attempts"].append({"endpoint": self.config.endpoints[at][0], "code": "OK"})
                if not self.final(w):
                    followed = self.watch(at, intent.id, until, report)
                    if followed is None:
                        # The coordinator went away mid-watch: the same bytes to the next one,
                        # after a pause so that a cluster down everywhere is not hammered.
                        time.sleep(min(backoff, max(0.0, until - time.time())))
                        backoff = min(backoff * 2, 5.0)
                        at = (at + 1) % n
                        continue
                    w = followed
                if w.status == self.pb.Status.STATUS_FAILED and time.time() < until:
                    time.sleep(min(backoff, max(0.0, until - time.time())))
                    backoff = min(backoff * 2, 5.0)
                    continue  # retryable: the same bytes again
                return self.outcome(report, w, digest)
            except grpc.RpcError as e:
                r = Refusal.of(e)
                cls = classify(e.code())
                report["attempts"].append({"endpoint": self.config.endpoints[at][0], "code": r.code, "rule": r.rule})
                report.update(code=r.code, rule=r.rule, reason=r.message, error_info=r.error_info, retry_delay_ms=r.retry_delay_ms, **{"class": cls})
                if cls in ("permanent", "operator"):
                    report["outcome"] = "refused" if cls == "permanent" else "needs-operator"
                    return report
                delay = r.retry_delay_ms / 1000 if r.retry_delay_ms is not None else backoff
                backoff = min(backoff * 2, 5.0)
                if cls == "resend" and e.code() in FAILOVER and n > 1:
                    at = (at + 1) % n
                    if at != 0:
                        delay = 0.0  # the next coordinator at once; a pause once per round
                if time.time() + delay >= until:
                    report["outcome"] = "retry-later" if cls == "wait" else "gave-up"
                    return report
                time.sleep(delay)

    def outcome(self, report: dict, w, digest: bytes) -> dict:
        status = self.pb.Status.Name(w.status)
        if bytes(w.digest) != digest:
            # The coordinator answers for some other intent: trust nothing in it.
            report.update(outcome="error", reason="the coordinator's digest is not this intent's")
            return report
        report.update(
            status=status,
            outcome={
                "STATUS_SIGNED": "signed",
                "STATUS_REFUSED": "refused",
                "STATUS_EXPIRED": "refused",
                "STATUS_PENDING_APPROVAL": "pending",
                "STATUS_FAILED": "gave-up",
            }.get(status, "pending"),
            rule=w.rule,
            reason=w.reason,
            message=bytes(w.message).hex(),
            signature=bytes(w.signature).hex(),
            group_public_key=bytes(w.group_public_key).hex(),
            signers=list(w.signers),
            evm_call={"to": w.evm_call.to, "data": bytes(w.evm_call.data).hex()} if w.HasField("evm_call") else None,
            solana_transaction=w.solana_transaction or None,
        )
        return report
