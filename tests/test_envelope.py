import json
import re

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
    ("frame", "details"),
    [
        ("not json", "not valid JSON at line 1, column 2: an unknown word: strings go in double quotes"),
        ("{", "not valid JSON at line 1, column 1: the text ends inside an object: a '}' is missing"),
        ('{"event": "e",}', "at line 1, column 15: a ',' before the closing bracket: JSON allows no trailing comma"),
        ("{'event': 'e'}", "at line 1, column 2: the keys of an object are strings in double quotes"),
        ('{"event" "e"}', "at line 1, column 10: a ':' should follow the key"),
        ('{\n"event": "e"\n"id": 1}', "at line 3, column 1: a ',' or the closing '}' should follow a value"),
        ('{"event": "e"} {}', "at line 1, column 16: more text after the end of the JSON value"),
        ('{"é": "è",}', "at line 1, column 11: a ',' before the closing bracket"),  # characters, not bytes
        ("", "not valid JSON: the frame is empty"),
        ("  ", "not valid JSON: the frame is empty"),
    ],
)
def test_invalid_json_says_what_is_wrong_and_where(frame: str, details: str) -> None:
    """The details of `invalid_json` say in plain words what is wrong, at which line and column."""
    with pytest.raises(InvalidJSON) as raised:
        parse_envelope(frame)
    assert details in raised.value.details


@pytest.mark.parametrize(
    "frame",
    [
        *("nul", "[1 2]", '{"a": }', '{"a": -}', '{"a": 1e}', '{"a": "b', "[" * 300 + "]" * 300),
        *('{"a": "\\x"}', '{"a": "\\ud800"}', '"\\udfff"', '"a\tb"'),
    ],
)
def test_invalid_json_never_shows_the_parsers_own_words(frame: str) -> None:
    """Whatever the mistake, the details carry a position and none of the JSON parser's internal phrasing."""
    with pytest.raises(InvalidJSON) as raised:
        parse_envelope(frame)
    details = str(raised.value.details)
    assert re.match(r"not valid JSON at line \d+, column \d+: ", details), details
    assert not re.search(r"EOF|ident|expected|while parsing|hex escape|recursion", details), details


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


@pytest.mark.parametrize(
    "frame",
    [
        '{"event": "e", "payload": NaN}',
        '{"event": "e", "payload": Infinity}',
        '{"event": "e", "payload": -Infinity}',
        '{"event": "e", "payload": 1e999}',
        '{"event": "e", "payload": {"a": [1, {"b": -1e400}]}}',
        '{"event": "e", "payload": [' + "9" * 400 + ".0]}",
    ],
)
def test_non_standard_numbers_are_invalid_json(frame: str) -> None:
    """NaN, Infinity and numbers a double cannot hold are refused, not turned into inf."""
    with pytest.raises(InvalidJSON):
        parse_envelope(frame)


def test_large_finite_numbers_still_parse() -> None:
    """The strictness costs nothing to valid JSON: 1e308 and long integers in a payload parse."""
    assert parse_envelope('{"event": "e", "payload": [1e308, 123456789012345678901234567890]}').payload == [
        1e308,
        123456789012345678901234567890,
    ]


@pytest.mark.parametrize("command_id", ["1" * 4000, str(2**63), str(-(2**63) - 1), json.dumps("x" * 129)])
def test_oversized_id_is_invalid_command_and_not_echoed(command_id: str) -> None:
    """An id over 128 characters or outside 64 bits is refused, and the error does not carry it."""
    with pytest.raises(InvalidCommand) as caught:
        parse_envelope('{"event": "e", "id": ' + command_id + "}")
    assert caught.value.id is None
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("command_id", [2**63 - 1, -(2**63), "x" * 128])
def test_ids_at_the_bounds_parse(command_id: str | int) -> None:
    """The largest accepted ids go through."""
    assert parse_envelope(json.dumps({"event": "e", "id": command_id})).id == command_id


def test_error_event_echoes_a_bounded_prefix_of_the_event() -> None:
    """A huge event name comes back cut to 128 characters and an ellipsis."""
    text = error_event(InternalError("x"), "a" * 100_000)
    assert json.loads(text)["payload"]["event"] == "a" * 128 + "…"
