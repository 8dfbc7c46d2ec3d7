"""The withdrawal intent, its canonical encoding and digest, and the backend signature.

An independent implementation of docs/intent.md (it does not call any Quorate code); the
vectors in core/tests/vectors/ pin it (`python -m quorate_client vectors`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Optional

from Crypto.Hash import keccak  # pycryptodome: Python's hashlib has no Keccak-256
import coincurve

DOMAIN_TAG = b"QUORATE/withdrawal-intent"
CHAIN_CODES = {
    "ethereum": 1,
    "polygon": 2,
    "bitcoin": 3,
    "bitcoin-testnet": 4,
    "tron": 5,
    "solana": 6,
}
MAX_LIFETIME_MS = 24 * 60 * 60 * 1000
U128_MAX = (1 << 128) - 1
U64_MAX = (1 << 64) - 1

_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ASSET = re.compile(r"[A-Z0-9]{1,16}")
_REF = re.compile(r"[\x20-\x7e]{1,128}")
_AMOUNT = re.compile(r"[1-9][0-9]{0,38}")


class IntentError(ValueError):
    """An intent that the coordinator would refuse; the message starts with the field."""


# --- addresses -------------------------------------------------------------------------


def keccak256(data: bytes) -> bytes:
    h = keccak.new(digest_bits=256)
    h.update(data)
    return h.digest()


def eip55(raw: bytes) -> str:
    """EIP-55: hex digit i is upper case when nibble i of keccak256(lower-case hex) is >= 8."""
    lower = raw.hex()
    h = keccak256(lower.encode()).hex()
    return "0x" + "".join(c.upper() if int(h[i], 16) >= 8 else c for i, c in enumerate(lower))


def _evm(chain: str, text: str) -> str:
    if not text.startswith("0x") or len(text) != 42:
        raise IntentError(f"destination: {chain} address must be 0x followed by 40 hex digits")
    body = text[2:]
    try:
        raw = bytes.fromhex(body)
    except ValueError as e:
        raise IntentError(f"destination: {chain} address is not hex") from e
    if raw == bytes(20):
        raise IntentError("destination: the zero address is not a destination")
    canonical = eip55(raw)
    # All one case carries no checksum; mixed case claims EIP-55 and must be exactly that.
    if body != body.lower() and body != body.upper() and canonical[2:] != body:
        raise IntentError(f"destination: {chain} address: EIP-55 checksum mismatch")
    return canonical


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        i = _B58.find(c)
        if i < 0:
            raise IntentError(f"not base58: {c!r}")
        n = n * 58 + i
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return bytes(len(text) - len(text.lstrip("1"))) + body


def b58encode(raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def _tron(text: str) -> str:
    raw = b58decode(text)
    if len(raw) != 25 or raw[0] != 0x41:
        raise IntentError("destination: tron address must be base58check of 0x41 + 20 bytes")
    if hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] != raw[21:]:
        raise IntentError("destination: tron address: checksum mismatch")
    if b58encode(raw) != text:
        raise IntentError("destination: tron address: not in canonical base58 form")
    return text


def _solana(text: str) -> str:
    raw = b58decode(text)
    if len(raw) != 32 or b58encode(raw) != text:
        raise IntentError("destination: solana address must be the base58 text of 32 bytes")
    return text


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values) -> int:
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (b >> i) & 1 else 0
    return chk


def _segwit(chain: str, text: str, hrp: str) -> str:
    """BIP-173 / BIP-350: one case throughout; the canonical form is lower case."""
    if text != text.lower() and text != text.upper():
        raise IntentError(f"destination: {chain} address mixes upper and lower case")
    s = text.lower()
    pos = s.rfind("1")
    if s[:pos] != hrp or len(s) > 90 or pos + 7 > len(s):
        raise IntentError(f"destination: {chain} address must be segwit starting with {hrp}1")
    try:
        data = [_BECH32.index(c) for c in s[pos + 1 :]]
    except ValueError as e:
        raise IntentError(f"destination: {chain} address: invalid bech32 character") from e
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    const = _polymod(expanded + data)
    version = data[0]
    # Version 0 uses bech32, later versions bech32m; only v0 (20/32 bytes) and v1 (32) spend.
    if const != (1 if version == 0 else 0x2BC830A3):
        raise IntentError(f"destination: {chain} address: checksum mismatch")
    acc, bits, prog = 0, 0, []
    for v in data[1:-6]:
        acc = (acc << 5) | v
        bits += 5
        if bits >= 8:
            bits -= 8
            prog.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        raise IntentError(f"destination: {chain} address: invalid padding")
    if not ((version == 0 and len(prog) in (20, 32)) or (version == 1 and len(prog) == 32)):
        raise IntentError(f"destination: {chain} address: only segwit v0 and v1 (Taproot)")
    return s


def normalize_destination(chain: str, text: str) -> str:
    """The canonical form the digest covers; signing any other spelling is signing nothing."""
    if not text or len(text) > 128 or not all(0x21 <= ord(c) <= 0x7E for c in text):
        raise IntentError("destination: empty, too long, or not printable ASCII")
    if chain in ("ethereum", "polygon"):
        return _evm(chain, text)
    if chain == "bitcoin":
        return _segwit(chain, text, "bc")
    if chain == "bitcoin-testnet":
        return _segwit(chain, text, "tb")
    if chain == "tron":
        return _tron(text)
    if chain == "solana":
        return _solana(text)
    raise IntentError(f"chain: unknown chain {chain!r}")


# --- the intent ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SolanaTerms:
    """Version-2 terms: exactly one of (nonce_account, nonce_value) and recent_blockhash."""

    nonce_account: str = ""
    nonce_value: str = ""
    recent_blockhash: str = ""
    create_destination_account: bool = False
    compute_unit_limit: int = 0  # 0 = not set
    compute_unit_price: int = 0  # 0 = not set

    def encode(self) -> bytes:
        def b32(text: str, what: str) -> bytes:
            raw = b58decode(text)
            if len(raw) != 32:
                raise IntentError(f"solana: {what}: not base58 of 32 bytes")
            return raw

        out = bytearray([1])  # terms kind: Solana
        if self.nonce_account and self.nonce_value and not self.recent_blockhash:
            out += b"\x01" + b32(self.nonce_account, "nonce_account") + b32(self.nonce_value, "nonce_value")
        elif self.recent_blockhash and not self.nonce_account and not self.nonce_value:
            out += b"\x02" + b32(self.recent_blockhash, "recent_blockhash")
        else:
            raise IntentError("solana: give nonce_account with nonce_value, or recent_blockhash")
        out.append(1 if self.create_destination_account else 0)
        limit, price = self.compute_unit_limit, self.compute_unit_price
        out.append((1 if limit else 0) | (2 if price else 0))
        if limit:
            out += limit.to_bytes(4, "big")
        if price:
            out += price.to_bytes(8, "big")
        return bytes(out)


@dataclasses.dataclass(frozen=True)
class Intent:
    """A withdrawal intent; `normalized()` validates it and returns the canonical form."""

    id: str
    chain: str
    asset: str
    destination: str
    amount: str  # base units, decimal, no leading zero
    created_at_ms: int
    expires_at_ms: int
    customer_ref: Optional[str] = None
    solana: Optional[SolanaTerms] = None

    def normalized(self) -> "Intent":
        if not _ID.fullmatch(self.id):
            raise IntentError("id: must be 1..=128 bytes of A-Z a-z 0-9 . _ : -")
        if self.chain not in CHAIN_CODES:
            raise IntentError(f"chain: unknown chain {self.chain!r}")
        if not _ASSET.fullmatch(self.asset):
            raise IntentError("asset: must be 1..=16 bytes of A-Z 0-9")
        if not _AMOUNT.fullmatch(self.amount) or int(self.amount) > U128_MAX:
            raise IntentError("amount: decimal base units, > 0, no leading zero, at most u128")
        if not 0 < self.created_at_ms < self.expires_at_ms <= min(U64_MAX, self.created_at_ms + MAX_LIFETIME_MS):
            raise IntentError("expires_at_ms: must be after created_at_ms (> 0) by at most 24 h")
        if self.customer_ref is not None and not _REF.fullmatch(self.customer_ref):
            raise IntentError("customer_ref: absent or 1..=128 bytes of printable ASCII")
        if self.solana is not None and self.chain != "solana":
            raise IntentError("solana: only a Solana intent carries Solana terms")
        return dataclasses.replace(self, destination=normalize_destination(self.chain, self.destination))

    def encode(self) -> bytes:
        """The canonical encoding (docs/intent.md) of the normalised intent."""
        i = self.normalized()

        def str16(s: str) -> bytes:
            b = s.encode("ascii")
            return len(b).to_bytes(2, "big") + b

        out = bytearray([len(DOMAIN_TAG)]) + DOMAIN_TAG
        out.append(2 if i.solana is not None else 1)
        out += str16(i.id)
        out.append(CHAIN_CODES[i.chain])
        out += str16(i.asset) + str16(i.destination)
        out += int(i.amount).to_bytes(16, "big")
        out += i.created_at_ms.to_bytes(8, "big") + i.expires_at_ms.to_bytes(8, "big")
        out += b"\x00" if i.customer_ref is None else b"\x01" + str16(i.customer_ref)
        if i.solana is not None:
            out += i.solana.encode()
        return bytes(out)

    def digest(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


def sign_digest(signing_key_hex: str, digest: bytes) -> bytes:
    """ECDSA secp256k1 over the 32-byte digest as the prehash (no second hash), RFC 6979
    nonce, 64-byte compact r || s (libsecp256k1 always gives low S)."""
    if len(digest) != 32:
        raise ValueError("the digest is 32 bytes")
    key = coincurve.PrivateKey(bytes.fromhex(signing_key_hex.strip()))
    # hasher=None: `digest` is the message hash itself. The 65th byte is the recovery id.
    return key.sign_recoverable(digest, hasher=None)[:64]
