import re

import pytest

from websuckets.security import Token


def test_generated_tokens_are_128_bit_lowercase_hex_and_distinct() -> None:
    """Token.generate() gives 32 lowercase hex characters, different every time."""
    tokens = {Token.generate() for _ in range(100)}
    assert len(tokens) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", token) for token in tokens)


def test_fewer_than_128_bits_is_refused() -> None:
    """Asking for a shorter token is an error, not a weak token."""
    with pytest.raises(ValueError, match="at least 16"):
        Token.generate(8)


def test_matches_compares_tokens() -> None:
    """matches() is true only for equal tokens."""
    token = Token.generate()
    assert Token.matches(token, token)
    assert not Token.matches(token, token[:-1] + ("0" if token[-1] != "0" else "1"))
