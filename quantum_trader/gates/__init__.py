"""Approval chain: candidates + portfolio + market + now → verdicts (allow or deny, why)."""
