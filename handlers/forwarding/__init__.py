"""Forwarding every verified TikTok event to the company's own services as Standard Webhooks."""
