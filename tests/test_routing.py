import pytest
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, WebSuckets
from websuckets.exc import AppStateError, DuplicateCommand


async def handler(socket: ServerConnection) -> None: ...


def test_prefix_joins_with_a_space() -> None:
    """CommandGroup("test") turns "say ok" into "test say ok"; no prefix keeps the name."""
    prefixed, plain = CommandGroup("test"), CommandGroup()
    prefixed.command("say ok")(handler)
    plain.command("say ok")(handler)
    assert [c.name for c in prefixed] == ["test say ok"]
    assert [c.name for c in plain] == ["say ok"]


def test_duplicate_in_a_group_raises_naming_it() -> None:
    """Registering a name twice in one group raises at once."""
    group = CommandGroup("user")
    group.command("create")(handler)
    with pytest.raises(DuplicateCommand, match="'user create' is already registered"):
        group.command("create")(handler)


def test_duplicate_across_groups_raises_at_include() -> None:
    """Two groups with the same full name cannot both join one app."""
    app = WebSuckets()
    first, second = CommandGroup("a"), CommandGroup()
    first.command("b")(handler)
    second.command("a b")(handler)
    app.include_command_group(first)
    with pytest.raises(ValueError, match="'a b' is already registered"):
        app.include_command_group(second)


def test_command_added_after_include_reaches_the_app() -> None:
    """A group keeps feeding the app it joined, and duplicates still raise."""
    app = WebSuckets()
    first, second = CommandGroup(), CommandGroup()
    app.include_command_group(first)
    app.include_command_group(second)
    first.command("late")(handler)
    assert "late" in app.commands
    with pytest.raises(DuplicateCommand):
        second.command("late")(handler)


async def test_no_changes_once_started() -> None:
    """Groups and middlewares join before start: the chains are built then."""
    app = WebSuckets()
    async with app:
        with pytest.raises(AppStateError, match="once the app has started"):
            app.include_command_group(CommandGroup())
