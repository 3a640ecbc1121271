"""Lotteries: verifiable weighted draws (``draw``: the pure algorithm, its record and
verifier; see docs/lottery.md for the specification)."""
