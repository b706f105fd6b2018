"""TikTok's v2 API as a client: requests, typed answers and errors, metrics."""
