from main import app  # the tutorial's "send message" program, saved as main.py

from websuckets.testing import TestClient


async def test_a_message_reaches_the_other_client() -> None:
    async with TestClient(app) as client:
        alice, bob = await client.connect(), await client.connect()
        alice_id = (await alice.receive()).payload["client_id"]  # each client is welcomed with its id
        bob_id = (await bob.receive()).payload["client_id"]
        await alice.send("send message", {"to": bob_id, "text": "hi bob"})
        assert (await alice.receive()).event == "message sent"
        incoming = await bob.receive()
        assert incoming.event == "incoming message"
        assert incoming.payload == {"author": alice_id, "text": "hi bob"}
