"""Testing with tiktok-webhooks: signed deliveries, the app in-process, a worker drain.

Installed with the package as a pytest plugin (`tiktok_webhooks` entry point), so a
company's own test suite gets the fixtures without any import:

    from receiver.testing import make_delivery

    async def test_my_handler(tiktok_webhooks):
        outcomes = await tiktok_webhooks.deliver(
            tiktok_webhooks.make_delivery("video.publish.completed", {"share_id": "v.1"})
        )
        assert outcomes.succeeded("mycompany.notify_team")

See docs/testing.md.
"""

from receiver.testing.deliveries import Delivery, load_jsonl, make_delivery, sign
from receiver.testing.tester import HandlerNeverRan, Outcomes, WebhookTester

__all__ = [
    "Delivery",
    "HandlerNeverRan",
    "Outcomes",
    "WebhookTester",
    "load_jsonl",
    "make_delivery",
    "sign",
]
