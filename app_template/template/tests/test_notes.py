"""The ``notes`` commands, through websuckets' test client (fakes: conftest.py)."""

from websuckets.testing import TestClient


async def test_add_replies_with_the_note(client: TestClient) -> None:
    """``notes add`` replies ``note added`` with the note, stamped by the clock."""
    alice = await client.connect()
    reply = await alice.request("notes add", {"text": "buy milk"})
    assert reply.event == "note added"
    assert reply.payload == {
        "id": 1,
        "text": "buy milk",
        "created_at": "2030-01-01T12:00:00Z",
    }


async def test_an_empty_note_is_refused(client: TestClient) -> None:
    """A payload that fails the model gets a ``validation_error`` naming the field."""
    alice = await client.connect()
    await alice.send("notes add", {"text": ""})
    error = await alice.receive_error("validation_error")
    assert "text" in error.raw


async def test_clients_share_the_notebook(client: TestClient) -> None:
    """A note one client adds is in the list another client gets."""
    alice, bob = await client.connect(), await client.connect()
    await alice.request("notes add", {"text": "buy milk"})
    reply = await bob.request("notes list")
    assert [note["text"] for note in reply.payload] == ["buy milk"]


async def test_the_notebook_keeps_the_newest_notes(client: TestClient) -> None:
    """With ``max_notes`` at 2 (the fake settings), the oldest note goes first."""
    alice = await client.connect()
    for text in ("one", "two", "three"):
        await alice.request("notes add", {"text": text})
    reply = await alice.request("notes list")
    assert [note["text"] for note in reply.payload] == ["two", "three"]
