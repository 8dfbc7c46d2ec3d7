// Self-check: every committed intent vector encodes and hashes to the committed bytes.

import { readFileSync } from "node:fs";
import { join } from "node:path";

import { digest, encode, Intent, normalized, publicKeyOf, signDigest, verifyDigest } from "./intent.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
// secp256k1 group order: a signature's S must be at most half of it (low S).
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

export interface Report {
  checked: number;
  vectors: string[];
  failures: Record<string, string>[];
}

function check(name: string, intent: Intent, encodingHex: string, digestHex: string, failures: Report["failures"]) {
  let enc: Uint8Array;
  let d: Uint8Array;
  try {
    enc = encode(intent);
    d = digest(intent);
  } catch (e) {
    failures.push({ vector: name, error: String(e) });
    return;
  }
  if (hex(enc) !== encodingHex) failures.push({ vector: name, field: "encoding", got: hex(enc), want: encodingHex });
  if (hex(d) !== digestHex) failures.push({ vector: name, field: "digest", got: hex(d), want: digestHex });
  // The signature the backend would send verifies over the digest as prehash and is low-S.
  const key = "11".repeat(32);
  const sig = signDigest(key, d);
  if (!verifyDigest(sig, d, publicKeyOf(key)) || BigInt("0x" + hex(sig.slice(32))) > N / 2n) {
    failures.push({ vector: name, field: "signature" });
  }
}

/** Checks intent_v1.json and intent_v2.json in `dir`. */
export function checkVectors(dir: string): Report {
  const failures: Report["failures"] = [];
  const vectors: string[] = [];
  // Timestamps go through BigInt from the JSON text: some exceed 2^53.
  const big = (text: string) =>
    JSON.parse(text.replace(/"(created_at_ms|expires_at_ms)": *([0-9]+)/g, '"$1": "$2"'));
  for (const v of big(readFileSync(join(dir, "intent_v1.json"), "utf8"))) {
    const intent: Intent = {
      id: v.id,
      chain: v.chain,
      asset: v.asset,
      destination: v.destination,
      amount: v.amount,
      created_at_ms: BigInt(v.created_at_ms),
      expires_at_ms: BigInt(v.expires_at_ms),
      customer_ref: v.customer_ref ?? undefined,
    };
    const name = `v1 ${v.id}`;
    vectors.push(name);
    try {
      if (normalized(intent).destination !== v.normalized_destination) {
        failures.push({ vector: name, field: "normalized_destination" });
      }
    } catch (e) {
      failures.push({ vector: name, error: String(e) });
    }
    check(name, intent, v.encoding_hex, v.digest_hex, failures);
  }
  for (const c of big(readFileSync(join(dir, "intent_v2.json"), "utf8")).cases) {
    const i = c.intent;
    const intent: Intent = {
      id: i.id,
      chain: i.chain,
      asset: i.asset,
      destination: i.destination,
      amount: i.amount,
      created_at_ms: BigInt(i.created_at_ms),
      expires_at_ms: BigInt(i.expires_at_ms),
      customer_ref: i.customer_ref || undefined,
      solana: { ...i.solana, compute_unit_price: BigInt(i.solana.compute_unit_price) },
    };
    const name = `v2 ${c.name}`;
    vectors.push(name);
    check(name, intent, c.encoding, c.digest, failures);
  }
  return { checked: vectors.length, vectors, failures };
}
