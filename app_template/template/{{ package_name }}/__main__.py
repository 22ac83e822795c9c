"""``python -m`` the package: serve the app until Ctrl+C (or SIGTERM)."""

import asyncio
import logging

from .app import create_app
from .settings import Settings


def main() -> None:
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(create_app()(settings.host, settings.port))


if __name__ == "__main__":
    main()
