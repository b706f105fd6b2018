"""The chaos suite (`scripts/chaos`): faults under load on loopback, see docs/operations.md."""
