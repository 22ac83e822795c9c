"""``notes add`` and ``notes list``: a notebook every client shares."""

from dishka import FromDishka
from websockets.asyncio.server import ServerConnection
from websuckets import CommandGroup, Context

from ..models import NewNote
from ..services import Notebook

notes = CommandGroup("notes")


@notes.command("add")
async def add(
    socket: ServerConnection,
    model: NewNote,
    ctx: Context,
    notebook: FromDishka[Notebook],
) -> None:
    """Keep a note; reply ``note added`` with it."""
    await ctx.reply("note added", notebook.add(model.text))


@notes.command("list")
async def list_notes(
    socket: ServerConnection,
    ctx: Context,
    notebook: FromDishka[Notebook],
) -> None:
    """Reply ``notes`` with every note kept, oldest first."""
    await ctx.reply("notes", notebook.notes())
