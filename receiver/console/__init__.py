"""The operator console: server-rendered pages under /console/, on with CONSOLE_ENABLED."""
