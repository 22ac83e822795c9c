"""The application: its command groups and the container of its services."""

from dishka import Provider, make_async_container
from websuckets import WebSuckets
from websuckets.di import WebSucketsProvider

from .commands import GROUPS
from .services import AppProvider


def create_app(*providers: Provider) -> WebSuckets:
    """A new app; ``providers`` come last and override the real ones (fakes)."""
    container = make_async_container(AppProvider(), WebSucketsProvider(), *providers)
    app = WebSuckets(container=container)
    for group in GROUPS:
        app.include_command_group(group)
    return app


app = create_app()
"""The app for ``websuckets run``; ``python -m`` the package builds its own."""
