"""Self-check: every committed intent vector encodes and hashes to the committed bytes."""

from __future__ import annotations

import json
from pathlib import Path

import coincurve

from .intent import Intent, SolanaTerms, sign_digest

# secp256k1 group order: a signature's S must be at most half of it (low S).
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _check(name: str, intent: Intent, encoding_hex: str, digest_hex: str, failures: list) -> None:
    try:
        enc = intent.encode()
        digest = intent.digest()
    except ValueError as e:
        failures.append({"vector": name, "error": str(e)})
        return
    if enc.hex() != encoding_hex:
        failures.append({"vector": name, "field": "encoding", "got": enc.hex(), "want": encoding_hex})
    if digest.hex() != digest_hex:
        failures.append({"vector": name, "field": "digest", "got": digest.hex(), "want": digest_hex})
    # The signature the backend would send verifies over the digest as prehash and is low-S.
    key = "11" * 32
    sig = sign_digest(key, digest)
    pub = coincurve.PrivateKey(bytes.fromhex(key)).public_key
    der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(sig))
    if not pub.verify(der, digest, hasher=None) or int.from_bytes(sig[32:], "big") > _N // 2:
        failures.append({"vector": name, "field": "signature"})


def check(vectors_dir: Path) -> dict:
    """Checks intent_v1.json and intent_v2.json in `vectors_dir`; returns a report."""
    failures: list = []
    names = []
    for v in json.loads((vectors_dir / "intent_v1.json").read_text()):
        intent = Intent(
            id=v["id"],
            chain=v["chain"],
            asset=v["asset"],
            destination=v["destination"],
            amount=v["amount"],
            created_at_ms=v["created_at_ms"],
            expires_at_ms=v["expires_at_ms"],
            customer_ref=v["customer_ref"],
        )
        name = f"v1 {v['id']}"
        names.append(name)
        try:
            if intent.normalized().destination != v["normalized_destination"]:
                failures.append({"vector": name, "field": "normalized_destination"})
        except ValueError as e:
            failures.append({"vector": name, "error": str(e)})
        _check(name, intent, v["encoding_hex"], v["digest_hex"], failures)
    doc = json.loads((vectors_dir / "intent_v2.json").read_text())
    for case in doc["cases"]:
        i = case["intent"]
        intent = Intent(
            id=i["id"],
            chain=i["chain"],
            asset=i["asset"],
            destination=i["destination"],
            amount=i["amount"],
            created_at_ms=i["created_at_ms"],
            expires_at_ms=i["expires_at_ms"],
            customer_ref=i["customer_ref"] or None,
            solana=SolanaTerms(**i["solana"]),
        )
        name = f"v2 {case['name']}"
        names.append(name)
        _check(name, intent, case["encoding"], case["digest"], failures)
    return {"checked": len(names), "vectors": names, "failures": failures}
