"""The tutorial's programs (examples/tutorial) behave as docs/tutorial.md says, in memory and over a socket."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from examples_loader import EXAMPLES, load_example

from websuckets.session import Session
from websuckets.testing import TestClient

TUTORIAL = sorted(path.name for path in (EXAMPLES / "tutorial").glob("*.py"))


def test_the_tutorial_includes_each_of_its_programs_in_order() -> None:
    """Every program of examples/tutorial is shown by the tutorial, and the tutorial shows no other example."""
    page = (EXAMPLES.parent / "docs" / "tutorial.md").read_text()
    included = re.findall(r'^--8<-- "examples/([^"]+)"$', page, re.MULTILINE)
    assert included == [
        f"tutorial/{name}" for name in ("app.py", "say_ok.py", "user_create.py", "send_message.py", "protected.py")
    ]
    assert sorted(name.removeprefix("tutorial/") for name in included) == TUTORIAL


@pytest.mark.parametrize("name", TUTORIAL)
def test_a_tutorial_program_imports_without_any_warning(name: str) -> None:
    """Importing the program warns of nothing (no deprecated websockets API) and its text is English."""
    path = EXAMPLES / "tutorial" / name
    assert re.search("[\u0400-\u04ff]", path.read_text()) is None
    # run_path runs the module under another name than __main__: it defines the app and does not serve
    script = f"import runpy; runpy.run_path({str(path)!r})"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")


async def test_app_without_commands_answers_every_message_with_an_error(real: bool) -> None:
    """With no command registered, every command gets unknown_command back and the connection stays open."""
    app = load_example("tutorial/app.py").app
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        for event in ("get all users", "get all posts"):
            await alice.send(event)
            error = await alice.receive_error("unknown_command")
            assert error.payload["event"] == event


async def test_say_ok_answers_with_plain_text(real: bool) -> None:
    """`say ok` answers the text ok; a group without a prefix adds nothing to the name."""
    app = load_example("tutorial/say_ok.py").app
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("say ok")
        assert await alice.receive_text() == "ok"


async def test_user_create_validates_its_payload(real: bool) -> None:
    """`user create` answers an event with the nickname; a payload missing a field gets validation_error."""
    app = load_example("tutorial/user_create.py").app
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("user create", {"nickname": "alice", "password": "s3cret"})
        assert (await alice.receive()).raw == '{"event":"user created","payload":{"nickname":"alice"}}'
        await alice.send("user create", {"nickname": "alice"})
        error = await alice.receive_error("validation_error")
        assert [detail["loc"] for detail in error.payload["details"]] == [["payload", "password"]]
        await alice.send("create", {"nickname": "alice", "password": "s3cret"})
        await alice.receive_error("unknown_command")


async def test_two_clients_learn_their_ids_and_message_each_other(real: bool) -> None:
    """Each client learns its id from the welcome event; one sends to the other's id; a gone client is an error."""
    app = load_example("tutorial/send_message.py").app
    async with TestClient(app, real=real) as client:
        alice, bob = await client.connect(), await client.connect()
        alice_welcome, bob_welcome = await alice.receive(), await bob.receive()
        assert (alice_welcome.event, bob_welcome.event) == ("welcome", "welcome")
        alice_id, bob_id = alice_welcome.payload["client_id"], bob_welcome.payload["client_id"]
        assert {alice_id, bob_id} == {str(alice.client_id), str(bob.client_id)}

        await alice.send("send message", {"to": bob_id, "text": "hi bob"})
        assert (await alice.receive()).raw == '{"event":"message sent","payload":null}'
        incoming = await bob.receive()
        assert (incoming.event, incoming.payload) == ("incoming message", {"author": alice_id, "text": "hi bob"})

        await bob.close()
        await alice.send("send message", {"to": bob_id, "text": "still there?"})
        error = await alice.receive_error("client_not_connected")
        assert error.payload["details"] == {"to": bob_id}


async def test_sign_up_log_in_and_call_the_protected_command(real: bool) -> None:
    """sign up, then log in (which verifies the connection and returns a token), then the protected `users`."""
    module = load_example("tutorial/protected.py")
    async with TestClient(module.app, real=real) as client:
        alice = await client.connect()
        credentials = {"login": "alice", "password": "s3cret"}
        await alice.send("users")
        assert (await alice.receive_error("unauthorized")).payload["details"] == "this command needs a token"

        await alice.send("sign up", credentials)
        assert (await alice.receive()).event == "signed up"
        await alice.send("sign up", credentials)
        await alice.receive_error("login_taken")
        await alice.send("log in", {"login": "alice", "password": "wrong"})
        await alice.receive_error("wrong_credentials")
        await alice.send("log in", {"login": "nobody", "password": "s3cret"})
        await alice.receive_error("wrong_credentials")

        await alice.send("log in", credentials)
        reply = await alice.receive()
        assert reply.event == "logged in"
        token = reply.payload["token"]
        assert re.fullmatch(r"[0-9a-f]{32}", token)
        user = Session.online[alice.client_id]
        assert Session.verified[user.id] is user
        assert user.login == "alice"

        await alice.send("users", token=token)
        users = await alice.receive()
        assert (users.event, users.payload) == ("users", [{"id": module.USERS["alice"]["id"], "login": "alice"}])

        bob = await client.connect()  # another connection presents the token: it is verified as alice
        await bob.send("users", token=token)
        assert (await bob.receive()).event == "users"


def test_the_testing_guide_test_passes_beside_the_tutorial_program(tmp_path: Path) -> None:
    """examples/testing/test_main.py, saved beside the send-message program as main.py, passes under pytest."""
    shutil.copy(EXAMPLES / "tutorial" / "send_message.py", tmp_path / "main.py")
    shutil.copy(EXAMPLES / "testing" / "test_main.py", tmp_path / "test_main.py")
    settings = '[tool.pytest.ini_options]\nasyncio_mode = "auto"\nasyncio_default_fixture_loop_scope = "function"\n'
    (tmp_path / "pyproject.toml").write_text(settings)  # as the testing guide shows, and `websuckets new` writes
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
