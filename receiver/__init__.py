"""tiktok-webhooks: the web process and the core it shares with the worker."""

__version__ = "0.1.0"
