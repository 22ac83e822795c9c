import json

import pytest

from websuckets.envelope import MISSING, Envelope, error_event, parse_envelope
from websuckets.exc import InternalError, InvalidCommand, InvalidJSON


def test_full_command_parses() -> None:
    """Every documented key lands in the envelope; unknown keys are ignored."""
    frame = '{"event": "user create", "payload": {"a": 1}, "token": "t", "id": 17, "extra": true}'
    assert parse_envelope(frame) == Envelope("user create", {"a": 1}, "t", 17)


def test_payload_absent_differs_from_null() -> None:
    """A command without a payload key carries MISSING, one with null carries None."""
    assert parse_envelope('{"event": "e"}').payload is MISSING
    assert parse_envelope('{"event": "e", "payload": null}').payload is None


@pytest.mark.parametrize("frame", ["nope", "{", "", b'{"event": "e"}'])
def test_not_json_text_is_invalid_json(frame: str | bytes) -> None:
    """Text that is not JSON, and any binary frame, raise InvalidJSON."""
    with pytest.raises(InvalidJSON):
        parse_envelope(frame)


@pytest.mark.parametrize(
    ("frame", "event", "id"),
    [
        ("[1, 2]", None, None),
        ('"event"', None, None),
        ("{}", None, None),
        ('{"event": 3}', None, None),
        ('{"event": null, "id": 4}', None, 4),
        ('{"event": "e", "token": 5, "id": "x"}', "e", "x"),
        ('{"event": "e", "id": 1.5}', None, None),
        ('{"event": "e", "id": true}', None, None),
    ],
)
def test_wrong_shape_is_invalid_command(frame: str, event: str | None, id: object) -> None:
    """JSON that is not a command raises InvalidCommand, keeping the event and id it could read."""
    with pytest.raises(InvalidCommand) as caught:
        parse_envelope(frame)
    assert (caught.value.event, caught.value.id) == (event, id)


def test_error_event_shape() -> None:
    """An error is the event 'error' with name, details, event and id."""
    text = error_event(InternalError("дубль", {"x": [1]}), "create", 17)
    assert json.loads(text) == {
        "event": "error",
        "payload": {"name": "дубль", "details": {"x": [1]}, "event": "create", "id": 17},
    }
