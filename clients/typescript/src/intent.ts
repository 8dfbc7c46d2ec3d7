// The withdrawal intent, its canonical encoding and digest, and the backend signature.
//
// An independent implementation of docs/intent.md (it calls no Quorate code); the vectors in
// core/tests/vectors/ pin it (`node dist/cli.js vectors`).

import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { keccak_256 } from "@noble/hashes/sha3.js";

export const DOMAIN_TAG = new TextEncoder().encode("QUORATE/withdrawal-intent");
export const CHAIN_CODES: Record<string, number> = {
  ethereum: 1,
  polygon: 2,
  bitcoin: 3,
  "bitcoin-testnet": 4,
  tron: 5,
  solana: 6,
};
export const MAX_LIFETIME_MS = 24n * 60n * 60n * 1000n;
const U128_MAX = (1n << 128n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

/** An intent the coordinator would refuse; the message starts with the field. */
export class IntentError extends Error {}

/** Solana terms (intent version 2): a durable nonce (account and value) or a blockhash. */
export interface SolanaTerms {
  nonce_account: string;
  nonce_value: string;
  recent_blockhash: string;
  create_destination_account: boolean;
  /** 0 = not set. */
  compute_unit_limit: number;
  /** 0 = not set; micro-lamports. */
  compute_unit_price: bigint;
}

/** A withdrawal intent. Timestamps are unix milliseconds as bigint (u64 on the wire). */
export interface Intent {
  id: string;
  chain: string;
  asset: string;
  destination: string;
  /** Base units, decimal, no sign, point, exponent or leading zero. */
  amount: string;
  created_at_ms: bigint;
  expires_at_ms: bigint;
  customer_ref?: string;
  solana?: SolanaTerms;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

// --- addresses ---------------------------------------------------------------------------

/** EIP-55: hex digit i is upper case when nibble i of keccak256(lower-case hex) is >= 8. */
export function eip55(raw: Uint8Array): string {
  const lower = hex(raw);
  const h = hex(keccak_256(new TextEncoder().encode(lower)));
  let out = "0x";
  for (let i = 0; i < 40; i++) out += parseInt(h[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  return out;
}

function evm(chain: string, text: string): string {
  const body = text.slice(2);
  if (!text.startsWith("0x") || !/^[0-9a-fA-F]{40}$/.test(body)) {
    throw new IntentError(`destination: ${chain} address must be 0x followed by 40 hex digits`);
  }
  const raw = Buffer.from(body, "hex");
  if (raw.every((b) => b === 0)) throw new IntentError("destination: the zero address is not a destination");
  const canonical = eip55(raw);
  // All one case carries no checksum; mixed case claims EIP-55 and must be exactly that.
  if (body !== body.toLowerCase() && body !== body.toUpperCase() && canonical.slice(2) !== body) {
    throw new IntentError(`destination: ${chain} address: EIP-55 checksum mismatch`);
  }
  return canonical;
}

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

export function b58decode(text: string): Uint8Array {
  let n = 0n;
  for (const c of text) {
    const i = B58.indexOf(c);
    if (i < 0) throw new IntentError(`not base58: ${JSON.stringify(c)}`);
    n = n * 58n + BigInt(i);
  }
  const body: number[] = [];
  while (n > 0n) {
    body.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  const zeros = text.length - text.replace(/^1+/, "").length;
  return Uint8Array.from([...new Array(zeros).fill(0), ...body]);
}

export function b58encode(raw: Uint8Array): string {
  let n = BigInt("0x" + (hex(raw) || "0"));
  let out = "";
  while (n > 0n) {
    out = B58[Number(n % 58n)] + out;
    n /= 58n;
  }
  let zeros = 0;
  while (zeros < raw.length && raw[zeros] === 0) zeros++;
  return "1".repeat(zeros) + out;
}

function tron(text: string): string {
  const raw = b58decode(text);
  if (raw.length !== 25 || raw[0] !== 0x41) {
    throw new IntentError("destination: tron address must be base58check of 0x41 + 20 bytes");
  }
  const check = sha256(sha256(raw.slice(0, 21))).slice(0, 4);
  if (hex(check) !== hex(raw.slice(21))) throw new IntentError("destination: tron address: checksum mismatch");
  if (b58encode(raw) !== text) throw new IntentError("destination: tron address: not in canonical base58 form");
  return text;
}

function solana(text: string): string {
  const raw = b58decode(text);
  if (raw.length !== 32 || b58encode(raw) !== text) {
    throw new IntentError("destination: solana address must be the base58 text of 32 bytes");
  }
  return text;
}

const BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

function polymod(values: number[]): number {
  const gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const b = chk >>> 25;
    chk = (((chk & 0x1ffffff) << 5) ^ v) >>> 0;
    for (let i = 0; i < 5; i++) if ((b >>> i) & 1) chk = (chk ^ gen[i]) >>> 0;
  }
  return chk;
}

/** BIP-173 / BIP-350: one case throughout; the canonical form is lower case. */
function segwit(chain: string, text: string, hrp: string): string {
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) {
    throw new IntentError(`destination: ${chain} address mixes upper and lower case`);
  }
  const s = text.toLowerCase();
  const pos = s.lastIndexOf("1");
  if (s.slice(0, pos) !== hrp || s.length > 90 || pos + 7 > s.length) {
    throw new IntentError(`destination: ${chain} address must be segwit starting with ${hrp}1`);
  }
  const data = [...s.slice(pos + 1)].map((c) => BECH32.indexOf(c));
  if (data.some((d) => d < 0)) throw new IntentError(`destination: ${chain} address: invalid bech32 character`);
  const expanded = [...hrp].map((c) => c.charCodeAt(0) >> 5);
  expanded.push(0, ...[...hrp].map((c) => c.charCodeAt(0) & 31));
  const version = data[0];
  // Version 0 uses bech32, later versions bech32m.
  if (polymod([...expanded, ...data]) !== (version === 0 ? 1 : 0x2bc830a3)) {
    throw new IntentError(`destination: ${chain} address: checksum mismatch`);
  }
  let acc = 0;
  let bits = 0;
  const prog: number[] = [];
  for (const v of data.slice(1, -6)) {
    acc = ((acc << 5) | v) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      prog.push((acc >> bits) & 0xff);
    }
  }
  if (bits >= 5 || (acc & ((1 << bits) - 1)) !== 0) throw new IntentError(`destination: ${chain} address: invalid padding`);
  const ok = (version === 0 && (prog.length === 20 || prog.length === 32)) || (version === 1 && prog.length === 32);
  if (!ok) throw new IntentError(`destination: ${chain} address: only segwit v0 and v1 (Taproot)`);
  return s;
}

/** The canonical form the digest covers; signing any other spelling is signing nothing. */
export function normalizeDestination(chain: string, text: string): string {
  if (!text || text.length > 128 || !/^[\x21-\x7e]+$/.test(text)) {
    throw new IntentError("destination: empty, too long, or not printable ASCII");
  }
  switch (chain) {
    case "ethereum":
    case "polygon":
      return evm(chain, text);
    case "bitcoin":
      return segwit(chain, text, "bc");
    case "bitcoin-testnet":
      return segwit(chain, text, "tb");
    case "tron":
      return tron(text);
    case "solana":
      return solana(text);
    default:
      throw new IntentError(`chain: unknown chain ${JSON.stringify(chain)}`);
  }
}

// --- the intent --------------------------------------------------------------------------

/** Validates every field and returns the intent with its destination normalised. */
export function normalized(i: Intent): Intent {
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(i.id)) throw new IntentError("id: must be 1..=128 bytes of A-Z a-z 0-9 . _ : -");
  if (!(i.chain in CHAIN_CODES)) throw new IntentError(`chain: unknown chain ${JSON.stringify(i.chain)}`);
  if (!/^[A-Z0-9]{1,16}$/.test(i.asset)) throw new IntentError("asset: must be 1..=16 bytes of A-Z 0-9");
  if (!/^[1-9][0-9]{0,38}$/.test(i.amount) || BigInt(i.amount) > U128_MAX) {
    throw new IntentError("amount: decimal base units, > 0, no leading zero, at most u128");
  }
  const c = i.created_at_ms;
  const e = i.expires_at_ms;
  if (!(c > 0n && c < e && e <= U64_MAX && e - c <= MAX_LIFETIME_MS)) {
    throw new IntentError("expires_at_ms: must be after created_at_ms (> 0) by at most 24 h");
  }
  // null (from JSON or a database) means absent, as undefined does: the wire carries "" for both.
  const customer_ref = i.customer_ref ?? undefined;
  if (customer_ref !== undefined && !/^[\x20-\x7e]{1,128}$/.test(customer_ref)) {
    throw new IntentError("customer_ref: absent or 1..=128 bytes of printable ASCII");
  }
  if (i.solana && i.chain !== "solana") throw new IntentError("solana: only a Solana intent carries Solana terms");
  return { ...i, customer_ref, destination: normalizeDestination(i.chain, i.destination) };
}

function be(v: bigint, bytes: number): number[] {
  const out: number[] = [];
  for (let k = bytes - 1; k >= 0; k--) out.push(Number((v >> BigInt(8 * k)) & 0xffn));
  return out;
}

function str16(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...be(BigInt(b.length), 2), ...b];
}

function terms(t: SolanaTerms): number[] {
  const b32 = (text: string, what: string) => {
    const raw = b58decode(text);
    if (raw.length !== 32) throw new IntentError(`solana: ${what}: not base58 of 32 bytes`);
    return [...raw];
  };
  const out = [1]; // terms kind: Solana
  if (t.nonce_account && t.nonce_value && !t.recent_blockhash) {
    out.push(1, ...b32(t.nonce_account, "nonce_account"), ...b32(t.nonce_value, "nonce_value"));
  } else if (t.recent_blockhash && !t.nonce_account && !t.nonce_value) {
    out.push(2, ...b32(t.recent_blockhash, "recent_blockhash"));
  } else {
    throw new IntentError("solana: give nonce_account with nonce_value, or recent_blockhash");
  }
  out.push(t.create_destination_account ? 1 : 0);
  // The wire carries a u32 and a u64: a value out of range would be cut, not refused.
  if (t.compute_unit_limit !== undefined && t.compute_unit_limit !== null) {
    const l = BigInt(t.compute_unit_limit);
    if (l < 0n || l > 0xffffffffn) throw new IntentError("solana: compute_unit_limit must fit in a u32");
  }
  if (t.compute_unit_price !== undefined && t.compute_unit_price !== null) {
    const p = BigInt(t.compute_unit_price);
    if (p < 0n || p > U64_MAX) throw new IntentError("solana: compute_unit_price must fit in a u64");
  }
  out.push((t.compute_unit_limit ? 1 : 0) | (t.compute_unit_price ? 2 : 0));
  if (t.compute_unit_limit) out.push(...be(BigInt(t.compute_unit_limit), 4));
  if (t.compute_unit_price) out.push(...be(t.compute_unit_price, 8));
  return out;
}

/** The canonical encoding (docs/intent.md) of the normalised intent. */
export function encode(intent: Intent): Uint8Array {
  const i = normalized(intent);
  const out = [DOMAIN_TAG.length, ...DOMAIN_TAG, i.solana ? 2 : 1];
  out.push(...str16(i.id), CHAIN_CODES[i.chain], ...str16(i.asset), ...str16(i.destination));
  out.push(...be(BigInt(i.amount), 16), ...be(i.created_at_ms, 8), ...be(i.expires_at_ms, 8));
  if (i.customer_ref === undefined) out.push(0);
  else out.push(1, ...str16(i.customer_ref));
  if (i.solana) out.push(...terms(i.solana));
  return Uint8Array.from(out);
}

/** SHA-256 of the canonical encoding: what the backend signs. */
export function digest(intent: Intent): Uint8Array {
  return sha256(encode(intent));
}

/** ECDSA secp256k1 over the 32-byte digest as the prehash (no second hash), RFC 6979 nonce,
 * low S, 64-byte compact r || s. */
export function signDigest(signingKeyHex: string, d: Uint8Array): Uint8Array {
  if (d.length !== 32) throw new Error("the digest is 32 bytes");
  const key = Uint8Array.from(Buffer.from(signingKeyHex.trim(), "hex"));
  return secp256k1.sign(d, key, { prehash: false, lowS: true, format: "compact" });
}

/** Checks a compact signature over a digest (used by the self-check). */
export function verifyDigest(signature: Uint8Array, d: Uint8Array, publicKey: Uint8Array): boolean {
  return secp256k1.verify(signature, d, publicKey, { prehash: false, lowS: true, format: "compact" });
}

export function publicKeyOf(signingKeyHex: string): Uint8Array {
  return secp256k1.getPublicKey(Uint8Array.from(Buffer.from(signingKeyHex.trim(), "hex")), true);
}
