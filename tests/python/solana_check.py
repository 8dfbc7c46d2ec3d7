"""Reads a signed Solana transaction (base64, as `quorate submit --json` prints it) with a
standard Solana library, solders, and prints what it says as one JSON object: the fee payer,
whether every signature verifies, and each instruction decoded (System transfers with their
source, destination and lamports; other instructions by program id and data)."""

import base64
import json
import sys

from solders.instruction import AccountMeta, Instruction
from solders.system_program import ID as SYSTEM, decode_transfer
from solders.transaction import Transaction


def main() -> None:
    tx = Transaction.from_bytes(base64.b64decode(sys.argv[1], validate=True))
    message = tx.message
    keys = message.account_keys
    try:
        tx.verify()
        verified = True
    except Exception:  # solders raises on any signature that does not verify
        verified = False
    instructions = []
    for ix in tx.message.instructions:
        program = keys[ix.program_id_index]
        entry = {"program": str(program), "data": bytes(ix.data).hex()}
        if program == SYSTEM and bytes(ix.data)[:4] == (2).to_bytes(4, "little"):
            # System Program Transfer, decoded by the library (accounts: from, to).
            metas = [
                AccountMeta(keys[i], message.is_signer(i), True) for i in ix.accounts
            ]
            t = decode_transfer(Instruction(program, bytes(ix.data), metas))
            entry["transfer"] = {
                "from": str(t["from_pubkey"]),
                "to": str(t["to_pubkey"]),
                "lamports": t["lamports"],
            }
        instructions.append(entry)
    print(
        json.dumps(
            {
                "fee_payer": str(keys[0]),
                "signers": message.header.num_required_signatures,
                "signatures": len(tx.signatures),
                "verified": verified,
                "blockhash": str(message.recent_blockhash),
                "instructions": instructions,
            }
        )
    )


if __name__ == "__main__":
    main()
