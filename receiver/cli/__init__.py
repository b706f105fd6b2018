"""The `tiktok-webhooks` command: serve, worker, replay, tokens, doctor, dev and the rest."""
