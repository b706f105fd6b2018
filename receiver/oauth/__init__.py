"""Login Kit: the OAuth 2.0 authorization-code routes that connect a user."""
