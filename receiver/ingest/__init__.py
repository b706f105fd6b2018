"""The hot path: verify, decode, dedupe and enqueue a delivery; capture and replay."""
