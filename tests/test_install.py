"""The locks that scripts/setup installs: one set of versions, and a demo that needs only its own."""

import asyncio
import os
import re
import subprocess
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest
from http_get import http_get
from redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)(?: ; (.+))?$", re.MULTILINE)
DEV_TOOLS = {"mypy", "ruff", "pytest", "playwright", "mkdocs-material", "matplotlib", "fastapi", "python-socketio"}


def pins(lock: str) -> dict[tuple[str, str], str]:
    """A lock's pins: (package, environment marker) -> version."""
    text = (ROOT / "requirements" / lock).read_text()
    return {(name.lower(), marker or ""): version for name, version, marker in PIN.findall(text)}


def test_the_demo_lock_pins_the_versions_of_the_development_lock_and_no_tool() -> None:
    """requirements/demo.txt is the development lock's versions for the framework alone: no development tool."""
    demo, dev = pins("demo.txt"), pins("dev.txt")
    assert {"websockets", "pydantic", "dishka", "click"} <= {name for name, _ in demo}
    assert {key: dev.get(key) for key in demo} == demo
    assert not DEV_TOOLS & {name for name, _ in demo}


def uv() -> str:
    """The uv of this environment (the lock installs it beside the tests)."""
    return str(Path(sys.executable).with_name("uv"))


@pytest.fixture
def demo_python(tmp_path: Path) -> Path:
    """The python of a new venv holding requirements/demo.txt and nothing else."""
    venv = tmp_path / "venv"
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    lock = ROOT / "requirements" / "demo.txt"
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", python, "-r", lock], check=True)
    return python


async def test_the_demo_serves_with_the_demo_lock_alone(demo_python: Path) -> None:
    """examples/chat.py, the demo, serves its page from a venv holding requirements/demo.txt and nothing else."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WEBSUCKETS_HOST": "127.0.0.1", "WEBSUCKETS_PORT": str(port)}
    demo = await asyncio.create_subprocess_exec(demo_python, ROOT / "examples" / "chat.py", env=env, stderr=PIPE)
    try:
        for _ in range(200):  # a bounded wait for the port
            try:
                status, _, body = await http_get(port, "/")
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the demo never served its page")
        assert status == 200
        assert b"<html" in body.lower()
    finally:
        demo.terminate()
        _, stderr = await asyncio.wait_for(demo.communicate(), 10)
    assert b"Traceback" not in stderr, stderr.decode()
