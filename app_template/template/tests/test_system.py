"""The ``system`` commands, through websuckets' test client (fakes: conftest.py)."""

from websuckets.testing import TestClient


async def test_ping_replies_with_the_server_time(client: TestClient) -> None:
    """``system ping`` replies ``pong`` with the time of the (frozen) clock."""
    alice = await client.connect()
    reply = await alice.request("system ping")
    assert reply.event == "pong"
    assert reply.payload == {"time": "2030-01-01T12:00:00Z"}


async def test_an_unknown_command_is_an_error(client: TestClient) -> None:
    """A command no group registered gets an ``unknown_command`` error."""
    alice = await client.connect()
    await alice.send("system reboot")
    await alice.receive_error("unknown_command")
