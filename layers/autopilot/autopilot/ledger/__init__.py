"""The reward ledger: immutable point movements, CSV export, reconciliation, totals."""
