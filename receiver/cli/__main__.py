"""`python -m receiver.cli`: the `tiktok-webhooks` command."""

from receiver.cli.main import main

raise SystemExit(main())
