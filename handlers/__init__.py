"""The arq worker: handlers per event family, token refresh and profile jobs, dead letters.

Register your own handlers with `handlers.registry.registry` (see docs/handlers.md).
"""
