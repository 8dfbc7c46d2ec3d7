"""Example Quorate exchange-backend client (docs/intent.md)."""
