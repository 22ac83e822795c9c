import json
from uuid import UUID

from pydantic import BaseModel

from websuckets import ClientEvent


class Point(BaseModel):
    x: int
    y: int


def test_client_event_is_the_json_text() -> None:
    """ClientEvent is a str holding the event and payload as JSON."""
    event = ClientEvent(event="message sent")
    assert isinstance(event, str)
    assert json.loads(event) == {"event": "message sent", "payload": None}
    assert (event.event, event.payload) == ("message sent", None)


def test_payload_may_be_any_json_value() -> None:
    """Strings, lists, dicts, models and UUIDs serialise as JSON."""
    uid = UUID(int=1)
    assert json.loads(ClientEvent("new token", "abc"))["payload"] == "abc"
    assert json.loads(ClientEvent("users list", [{"id": 1}]))["payload"] == [{"id": 1}]
    assert json.loads(ClientEvent("point", Point(x=1, y=2)))["payload"] == {"x": 1, "y": 2}
    assert json.loads(ClientEvent("who", {"id": uid}))["payload"] == {"id": str(uid)}


def test_id_is_written_only_when_given() -> None:
    """A reply tagged with an id carries it; an untagged one has no id key."""
    assert json.loads(ClientEvent("echo", 1, id=17)) == {"event": "echo", "payload": 1, "id": 17}
    assert "id" not in json.loads(ClientEvent("echo", 1))
