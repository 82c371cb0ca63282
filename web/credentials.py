"""Comparing a secret a client sent with ours, whatever bytes the client put in the header."""

from __future__ import annotations

import hmac


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality of two texts.

    `hmac.compare_digest` raises TypeError for a str with a non-ASCII character, and aiohttp
    hands headers over as UTF-8 with surrogate escapes, so any header can be compared as
    bytes."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))
