"""The ``websuckets`` command: ``run`` an app, scaffold a project with ``new``, print its schema.

Built on click. ``websuckets run`` imports ``MODULE:ATTRIBUTE`` the way uvicorn does (the
current directory first on ``sys.path``) and serves it with `WebSuckets.__call__`, so the app's
container, hooks and graceful shutdown are exactly those of ``asyncio.run(app(host, port))``
(on the event loop ``--loop`` names). With ``--workers N`` above 1, a `Supervisor` runs N
worker processes that each serve it that way (see `websuckets.supervisor`).
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ._version import __version__
from .app import WebSuckets
from .exc import BackendUnavailable, WorkerBootError
from .listening import Balance, listening_socket
from .loading import AppNotFound, InvalidAppSpec, find_app
from .supervisor import Supervisor
from .worker import loop_factory, prepare

__all__ = ["load_app", "main", "template_dir"]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOOPS = ("auto", "asyncio", "uvloop")


def load_app(spec: str) -> WebSuckets:
    """The `WebSuckets` named by ``"module:attribute"`` (`websuckets.loading.find_app`); a
    `click.ClickException` saying what is wrong."""
    try:
        return find_app(spec)
    except InvalidAppSpec as exc:
        raise click.BadParameter(str(exc), param_hint="APP") from None
    except AppNotFound as exc:
        raise click.ClickException(str(exc)) from None


def template_dir() -> Path:
    """The project template: inside the installed package, or ``app_template/`` beside a checkout."""
    shipped = Path(__file__).parent / "_template"
    return shipped if shipped.is_dir() else Path(__file__).parent.parent / "app_template"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="websuckets")
def main() -> None:
    """websuckets: real-time applications over WebSockets."""


@main.command()
@click.argument("app")
@click.option("--host", default="localhost", show_default=True, help="Interface to listen on.")
@click.option("--port", default=9000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes serving the port, supervised; more than 1 needs a shared backend.",
)
@click.option(
    "--loop",
    default="auto",
    show_default=True,
    type=click.Choice(LOOPS),
    help="The event loop: auto is uvloop when it is installed, asyncio otherwise.",
)
@click.option(
    "--balance",
    type=click.Choice([b.value for b in Balance]),
    help="With --workers: a socket per worker (reuse-port, the default on Linux) or one shared socket.",
)
@click.option(
    "--worker-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="With --workers: seconds without a heartbeat after which a worker's event loop is stuck and it is killed.",
)
@click.option("--reload", is_flag=True, help="Restart when a .py file under the current directory changes.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(LOG_LEVELS),
    help="The level of the log on stderr.",
)
@click.option(
    "--env-prefix",
    metavar="PREFIX",
    help="Read --host, --port and --log-level, where left out, from PREFIX_HOST, PREFIX_PORT and PREFIX_LOG_LEVEL.",
)
@click.option(
    "--origin", "origins", multiple=True, help="A browser origin allowed to connect (repeat it); '*' for any."
)
@click.option("--max-connections", type=click.IntRange(1), help="Connections served at once; more get HTTP 503.")
@click.option("--ping-interval", type=click.FloatRange(min=0, min_open=True), help="Seconds between keepalive pings.")
@click.option(
    "--ping-timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds before a silent peer is dropped."
)
@click.option("--compression/--no-compression", default=None, help="permessage-deflate on or off (off by default).")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM): serve wss://.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM), with --certfile.")
def run(
    app: str,
    host: str,
    port: int,
    workers: int,
    loop: str,
    balance: str | None,
    worker_timeout: float,
    reload: bool,
    log_level: str,
    env_prefix: str | None,
    certfile: str | None,
    keyfile: str | None,
    **options: Any,
) -> None:
    """Serve APP until Ctrl+C or SIGTERM.

    APP is MODULE:ATTRIBUTE, a WebSuckets app (for example chat.app:app), or MODULE:FACTORY, a
    function without arguments that makes one (for example chat:create_app).

    On Ctrl+C or SIGTERM the server stops accepting, lets commands in flight finish (up to the
    app's shutdown_timeout), then closes connections with code 1001. Options left out keep the
    app's own settings (see the "Security and limits" page).
    """
    if env_prefix:
        found = _from_environment(env_prefix, host=host, port=port, log_level=log_level)
        host, port, log_level = found["host"], found["port"], found["log_level"]
    application = load_app(app)  # fail here, in the parent, with a one-line error
    if keyfile is not None and certfile is None:
        raise click.BadParameter("--keyfile needs --certfile", param_hint="--keyfile")
    settings = _settings(options)
    tls = (certfile, keyfile) if certfile is not None else None
    loop = _event_loop(loop)
    if workers > 1:
        if reload:
            raise click.UsageError("--reload runs one process: leave out --workers")
        if not application.backend.shared:
            raise click.ClickException(
                f"--workers {workers} needs a backend shared between processes; this app uses "
                f'{type(application.backend).__name__}: WebSuckets(backend=RedisBackend("redis://..."))'
            )
        balancing = Balance(balance) if balance else Balance.default()
        supervisor = Supervisor(
            app,
            workers,
            balancing,
            loop,
            log_level,
            load=find_app,
            settings=settings,
            tls=tls,
            worker_timeout=worker_timeout,
            drain_timeout=2 * application.shutdown_timeout + 5,  # commands, then the closing handshakes
        )
        _supervise(supervisor, host, port, log_level)
    elif reload:
        _run_with_reload(app, host, port, log_level, settings, tls, loop)
    else:
        serve(app, host, port, log_level, settings, tls, loop)


def _from_environment(prefix: str, **values: Any) -> dict[str, Any]:
    """``values`` of options left out replaced by the variables ``PREFIX_NAME`` that are set.

    A project's settings named after its package (``MY_CHAT_PORT``) so serve it under
    ``websuckets run --env-prefix MY_CHAT`` as under its own ``python -m my_chat``.
    """
    context = click.get_current_context()
    params = {param.name: param for param in context.command.params}
    for name in values:
        if context.get_parameter_source(name) is not ParameterSource.DEFAULT:
            continue  # given on the command line: it wins
        variable = f"{prefix.removesuffix('_')}_{name.upper()}"
        text = os.environ.get(variable)
        if text is None:
            continue
        param = params[name]
        try:
            values[name] = param.type.convert(text.lower() if name == "log_level" else text, param, context)
        except click.BadParameter as exc:
            raise click.UsageError(f"{variable}={text!r} is not a valid {param.opts[0]}: {exc.message}") from None
    return values


def _settings(options: dict[str, Any]) -> dict[str, Any]:
    """The app settings given on the command line (the others keep the app's values)."""
    settings = {name: value for name, value in options.items() if value not in (None, ())}
    origins = settings.get("origins")
    if origins is not None:
        settings["origins"] = "*" if "*" in origins else list(origins)
    if "compression" in settings:
        settings["compression"] = "deflate" if settings["compression"] else None
    return settings


def serve(
    spec: str,
    host: str,
    port: int,
    log_level: str,
    settings: dict[str, Any] | None = None,
    tls: tuple[str, str | None] | None = None,
    loop: str = "asyncio",
) -> None:
    """Import the app named by ``spec`` and serve it; the target of ``run`` (and of each reload)."""
    _configure_logging(log_level)
    app = load_app(spec)
    context = prepare(app, settings or {}, tls)
    try:
        with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
            runner.run(app(host, port, ssl=context))
    except BackendUnavailable as exc:
        raise click.ClickException(str(exc.details)) from None
    except OSError as exc:
        raise _listen_error(exc, host, port) from None
    except KeyboardInterrupt:  # a second Ctrl+C during shutdown
        pass


def _supervise(supervisor: Supervisor, host: str, port: int, log_level: str) -> None:
    if sys.platform == "win32":
        raise click.ClickException("--workers needs a POSIX system: run several processes behind a load balancer")
    if supervisor.balance is Balance.REUSE_PORT and sys.platform != "linux":
        raise click.ClickException("--balance reuse-port spreads connections on Linux only: use --balance shared")
    _configure_logging(log_level)
    try:
        sock = listening_socket(host, port, supervisor.balance)
    except OSError as exc:
        raise _listen_error(exc, host, port) from None
    try:
        supervisor.run(sock)
    except WorkerBootError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        sock.close()


def _configure_logging(log_level: str) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _listen_error(exc: OSError, host: str, port: int) -> Exception:
    if exc.errno == errno.EADDRINUSE:
        return click.ClickException(f"port {port} on {host} is already in use")
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
        return click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}")
    return exc


def _event_loop(loop: str) -> str:
    """``asyncio`` or ``uvloop``: what ``--loop`` means here; an error when uvloop is asked for and missing."""
    installed = importlib.util.find_spec("uvloop") is not None
    if loop == "auto":
        return "uvloop" if installed else "asyncio"
    if loop == "uvloop" and not installed:
        raise click.ClickException(
            "--loop uvloop needs uvloop, which is not installed: pip install 'websuckets[uvloop]'"
        )
    return loop


def _run_with_reload(
    spec: str,
    host: str,
    port: int,
    log_level: str,
    settings: dict[str, Any],
    tls: tuple[str, str | None] | None,
    loop: str,
) -> None:
    watchfiles = _optional("watchfiles", "--reload")
    click.echo("websuckets: watching for changes in .py files under the current directory", err=True)
    watchfiles.run_process(
        Path.cwd(),
        target=serve,
        args=(spec, host, port, log_level, settings, tls, loop),
        watch_filter=watchfiles.PythonFilter(),
        callback=lambda changes: click.echo(f"websuckets: {len(changes)} change(s), restarting", err=True),
    )


@main.command()
@click.argument("app")
@click.option("--yaml", "as_yaml", is_flag=True, help="YAML instead of JSON (needs PyYAML).")
def asyncapi(app: str, as_yaml: bool) -> None:
    """Print APP's AsyncAPI 3.0 document: commands, events, errors.

    APP is MODULE:ATTRIBUTE or MODULE:FACTORY, as for run (for example chat:create_app).
    """
    spec = load_app(app).asyncapi()
    if as_yaml:
        yaml = _optional("yaml", "--yaml", extra="schema")
        click.echo(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), nl=False)
    else:
        click.echo(json.dumps(spec, indent=2))


@main.command()
@click.argument("app")
def typescript(app: str) -> None:
    """Print TypeScript declarations of APP for websuckets.js.

    The declarations type websuckets.js by APP's commands and events. APP is MODULE:ATTRIBUTE
    or MODULE:FACTORY, as for run. Save them beside the client:

    \b
        websuckets typescript chat:create_app > web/websuckets.d.ts
    """
    from .typescript import declarations

    click.echo(declarations(load_app(app).asyncapi(), source=f"websuckets typescript {app}"), nl=False)


@main.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The project's name (asked for when missing).")
def new(path: Path, name: str | None) -> None:
    """Create a project at PATH from the websuckets template.

    The project has an app, command groups, services behind a dishka provider, settings from
    the environment and tests; its README says how to set it up, run it and test it.
    """
    copier = _optional("copier", "websuckets new")  # before any question: a missing extra is the first thing to fix
    if path.exists() and any(path.iterdir()):
        raise click.ClickException(f"{path} is not empty: choose a new directory")
    if name is None:
        name = click.prompt("Project name", default=path.resolve().name)
    answers = {"project_name": name, "websuckets_source": _websuckets_source()}
    try:
        copier.run_copy(str(template_dir()), str(path), data=answers, defaults=True, unsafe=False, quiet=True)
    except ValueError as exc:  # copier's answer validation: a blank name, one that shadows a dependency
        raise click.ClickException(str(exc)) from None
    click.echo(f"websuckets: created {name!r} in {path}; see {path / 'README.md'} to set it up, run and test it")


def _websuckets_source() -> str:
    """Where pip installs this websuckets from, for a new project's set-up line; empty if from an index.

    Until websuckets is released on PyPI, a project installs it from where ``websuckets new``
    ran: this checkout, or the wheel, directory or repository that pip recorded (PEP 610's
    ``direct_url.json``) when it installed this copy.
    """
    package = Path(__file__).resolve().parent
    if template_dir() == package.parent / "app_template":  # a checkout: its root is what pip installs
        return str(package.parent)
    try:
        distribution = importlib.metadata.distribution("websuckets")
    except importlib.metadata.PackageNotFoundError:
        return ""
    if Path(str(distribution.locate_file("websuckets/cli.py"))).resolve() != Path(__file__).resolve():
        return ""  # the metadata found is another copy's
    recorded = distribution.read_text("direct_url.json")
    return _source_from_direct_url(json.loads(recorded)) if recorded else ""


def _source_from_direct_url(direct_url: dict[str, Any]) -> str:
    """A ``pip install`` argument for what PEP 610's ``direct_url.json`` records: a path, or a direct reference."""
    url = str(direct_url.get("url", ""))
    vcs = direct_url.get("vcs_info")
    if vcs is not None:
        return f"websuckets @ {vcs['vcs']}+{url}@{vcs['commit_id']}"
    if url.startswith("file://"):
        return urllib.request.url2pathname(urllib.parse.urlsplit(url).path)
    return f"websuckets @ {url}" if url else ""


def _optional(module: str, feature: str, extra: str = "cli") -> Any:
    """Import a module of an extra (``cli`` by default), or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise click.ClickException(
            f"{feature} needs {module}, which is not installed: pip install 'websuckets[{extra}]'"
        ) from None
