#!/usr/bin/env python3
"""Independent RFC 9591 FROST(secp256k1, SHA-256) signature verifier, standard library only.

Written from RFC 9591 (section 6.5 ciphersuite, section 5.3 / 4.x verification) and RFC 9380
(expand_message_xmd), sharing no code with Quorate or the frost crates. Usage:

    quorate submit ... --json | python3 tools/rfc9591_verify.py
    python3 tools/rfc9591_verify.py GROUP_KEY_HEX MESSAGE_HEX SIGNATURE_HEX

Prints "valid" and exits 0, or "INVALID" and exits 1.
"""
import hashlib
import json
import sys

P = 2**256 - 2**32 - 977
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
     0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)
CONTEXT = b"FROST-secp256k1-SHA256-v1"


def add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % P == 0:
        return None
    if a == b:
        lam = 3 * a[0] * a[0] * pow(2 * a[1], -1, P) % P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, P) % P
    x = (lam * lam - a[0] - b[0]) % P
    return (x, (lam * (a[0] - x) - a[1]) % P)


def mul(k, pt):
    acc = None
    while k:
        if k & 1:
            acc = add(acc, pt)
        pt = add(pt, pt)
        k >>= 1
    return acc


def decompress(b):
    if len(b) != 33 or b[0] not in (2, 3):
        raise ValueError("not a compressed point")
    x = int.from_bytes(b[1:], "big")
    if x >= P:
        raise ValueError("x out of range")
    y = pow((x * x * x + 7) % P, (P + 1) // 4, P)
    if (y * y - (x * x * x + 7)) % P:
        raise ValueError("not on the curve")
    if y % 2 != b[0] - 2:
        y = P - y
    return (x, y)


def expand_message_xmd(msg, dst, length):
    b_in_bytes, r_in_bytes = 32, 64
    ell = -(-length // b_in_bytes)
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha256(bytes(r_in_bytes) + msg + length.to_bytes(2, "big") + b"\x00" + dst_prime).digest()
    out = hashlib.sha256(b0 + b"\x01" + dst_prime).digest()
    prev = out
    for i in range(2, ell + 1):
        prev = hashlib.sha256(bytes(x ^ y for x, y in zip(b0, prev)) + bytes([i]) + dst_prime).digest()
        out += prev
    return out[:length]


def h2(m):
    return int.from_bytes(expand_message_xmd(m, CONTEXT + b"chal", 48), "big") % N


def verify(group_key, msg, sig):
    if len(sig) != 65:
        return False
    try:
        pk = decompress(group_key)
        r = decompress(sig[:33])
    except ValueError:
        return False
    z = int.from_bytes(sig[33:], "big")
    if z >= N:
        return False
    c = h2(sig[:33] + group_key + msg)
    return mul(z, G) == add(r, mul(c, pk))


def main():
    if len(sys.argv) == 4:
        gk, msg, sig = (bytes.fromhex(a) for a in sys.argv[1:])
    else:
        w = json.load(sys.stdin)
        gk, msg, sig = (bytes.fromhex(w[k]) for k in ("group_public_key", "message", "signature"))
    ok = verify(gk, msg, sig)
    print("valid" if ok else "INVALID")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
