from __future__ import annotations

import pytest


@pytest.fixture(params=["memory", "real"])
def real(request: pytest.FixtureRequest) -> bool:
    """Run the test twice: in memory, and against a real server on 127.0.0.1."""
    return request.param == "real"
