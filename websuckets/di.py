"""dishka integration: the objects websuckets puts into the container's context.

Scopes: ``Scope.APP`` lives as long as the app, ``Scope.SESSION`` as one connection
(opened on connect, closed with its finalizers on disconnect), ``Scope.REQUEST`` as one
command or one hook call.
"""

from __future__ import annotations

from dishka import Provider, Scope, from_context
from websockets.asyncio.server import ServerConnection

from .context import Context
from .user import User

__all__ = ["WebSucketsProvider"]


class WebSucketsProvider(Provider):
    """Provides the connection and its ``User`` (SESSION) and the command's ``Context`` (REQUEST).

    The connection is the very object handlers receive as their socket.
    """

    connection = from_context(provides=ServerConnection, scope=Scope.SESSION)
    user = from_context(provides=User, scope=Scope.SESSION)
    context = from_context(provides=Context, scope=Scope.REQUEST)
