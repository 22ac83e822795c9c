import asyncio
import uuid

from pydantic import BaseModel
from websockets import WebSocketServerProtocol

from websuckets import ClientEvent, CommandGroup, WebSuckets
from websuckets.exc import InternalError
from websuckets.security import Token
from websuckets.session import Session

app = WebSuckets()
group = CommandGroup()


class CreateModel(BaseModel):
    login: str
    password: str


DATABASE = []


class UserNotFound(InternalError):
    def __init__(self):
        super().__init__("пользователь не найден")


class InvalidPassword(InternalError):
    def __init__(self):
        super().__init__("неверный пароль")


@group.command("create")
async def create(socket: WebSocketServerProtocol, model: CreateModel):
    for i in DATABASE:
        if i["login"] == model.login:
            raise InternalError("дубль", "Пользователь с таким логином уже существует")
    user_data = model.model_dump()
    user_data["id"] = str(uuid.uuid4())
    DATABASE.append(user_data)
    await socket.send(ClientEvent("user created"))


@group.command("auth")
async def auth(socket: WebSocketServerProtocol, model: CreateModel):
    for i in DATABASE:
        if i["login"] == model.login:
            if i["password"] != model.password:
                raise InvalidPassword  # raising the class itself must work
            token = Token.generate()
            current_user = Session.online[socket.id]
            current_user.id = i["id"]  # required
            current_user.token = token  # required
            current_user.login = i["login"]  # anything else is allowed
            await socket.send(ClientEvent("new token", token))
            return
    raise UserNotFound


@group.command("get list", protected=True)
async def get_list(socket: WebSocketServerProtocol):
    users = [{k: v for k, v in i.items() if k != "password"} for i in DATABASE]
    await socket.send(ClientEvent("users list", users))


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
