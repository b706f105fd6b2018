"""The internal API: read users, statuses and tokens behind ADMIN_TOKEN."""
