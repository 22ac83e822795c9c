"""The pydantic models: what clients send (validated) and what the app sends back."""

from datetime import datetime

from pydantic import BaseModel, Field


class NewNote(BaseModel):
    """The payload of ``notes add``."""

    text: str = Field(min_length=1, max_length=500)


class Note(BaseModel):
    """A note, as the notebook keeps it and clients receive it."""

    id: int
    text: str
    created_at: datetime


class Pong(BaseModel):
    """The reply to ``system ping``."""

    time: datetime
