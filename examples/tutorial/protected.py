import asyncio
import uuid

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, InternalError, Token, User, WebSuckets

app = WebSuckets()
group = CommandGroup()


class Credentials(BaseModel):
    login: str
    password: str


# login -> {"id", "login", "password"}: a real app keeps a database, and password hashes
USERS: dict[str, dict[str, str]] = {}


class LoginTaken(InternalError):
    def __init__(self) -> None:
        super().__init__("login_taken", "a user with this login already exists")


class WrongCredentials(InternalError):
    def __init__(self) -> None:
        super().__init__("wrong_credentials", "no user has this login and password")


@group.command("sign up")
async def sign_up(socket: ServerConnection, credentials: Credentials) -> None:
    if credentials.login in USERS:
        raise LoginTaken
    USERS[credentials.login] = {"id": str(uuid.uuid4()), **credentials.model_dump()}
    await socket.send(ClientEvent("signed up"))


@group.command("log in")
async def log_in(socket: ServerConnection, credentials: Credentials, user: User) -> None:
    stored = USERS.get(credentials.login)
    if stored is None or stored["password"] != credentials.password:
        raise WrongCredentials
    token = Token.generate()
    user.id = stored["id"]  # setting both the id and the token verifies the connection
    user.token = token
    user.login = stored["login"]  # any other attribute may be kept too
    await socket.send(ClientEvent("logged in", {"token": token}))


@group.command("users", protected=True)
async def users(socket: ServerConnection) -> None:
    await socket.send(ClientEvent("users", [{"id": u["id"], "login": u["login"]} for u in USERS.values()]))


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
