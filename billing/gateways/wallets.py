"""Wallet payment tokens exactly as the wallet SDKs hand them to an app.

- Google Pay: `PaymentData.paymentMethodData.tokenizationData.token`, a JSON text with
  `protocolVersion` ("ECv2"), `signature`, `intermediateSigningKey {signedKey, signatures[]}` and
  `signedMessage` (itself a JSON text with `encryptedMessage`, `ephemeralPublicKey`, `tag`)
  (https://developers.google.com/pay/api/web/guides/resources/payment-data-cryptography).
- Apple Pay: the payment token (`PKPaymentToken` / `ApplePayPaymentToken`) `{paymentData,
  paymentMethod, transactionIdentifier}`, or its `paymentData` alone: `{version "EC_v1", data,
  signature, header {ephemeralPublicKey, publicKeyHash, transactionId}}`
  (https://developer.apple.com/documentation/passkit/payment-token-format-reference).

`parse_wallet_token` tells which wallet a token comes from by its shape, so every gateway (and the
driver API) reads a `networkToken` the same way. A token that is not JSON at all (the sandbox's
`tok_...` test tokens) is no wallet payload: None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

WalletKind = Literal["google_pay", "apple_pay"]

_GOOGLE_KEYS = ("protocolVersion", "signature", "intermediateSigningKey", "signedMessage")
_APPLE_KEYS = ("version", "data", "signature", "header")


class WalletTokenError(ValueError):
    """A JSON `networkToken` that is neither a Google Pay nor an Apple Pay payment token."""


@dataclass(frozen=True)
class WalletToken:
    """A parsed wallet token. `token` is Google's token, or Apple's `paymentData`."""

    kind: WalletKind
    token: dict[str, Any]

    @property
    def signature(self) -> str:
        """The wallet's signature over the payment data (both wallets carry one)."""
        return str(self.token["signature"])


def parse_wallet_token(raw: str) -> WalletToken | None:
    """The wallet token in `raw`, None when `raw` is not JSON (an opaque test token).

    Raises WalletTokenError for JSON that is not a complete Google Pay or Apple Pay token.
    """
    text = raw.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise WalletTokenError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WalletTokenError("a wallet token is a JSON object")
    if "protocolVersion" in data or "signedMessage" in data:
        return WalletToken("google_pay", _google(data))
    payment_data = data.get("paymentData", data)
    if isinstance(payment_data, dict) and "header" in payment_data:
        return WalletToken("apple_pay", _apple(payment_data))
    raise WalletTokenError("neither a Google Pay nor an Apple Pay payment token")


def _strings(data: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if not isinstance(data.get(key), str) or not data[key]:
            raise WalletTokenError(f"{where}{key} must be a non-empty string")


def _object(data: dict[str, Any], strings: tuple[str, ...], version: tuple[str, str],
            nested: str, where: str) -> dict[str, Any]:
    """Check `data`'s strings and its one accepted version; return its object `nested`."""
    _strings(data, strings, where)
    key, accepted = version
    if data[key] != accepted:
        raise WalletTokenError(f"{where}{key} {data[key]!r}: only {accepted}")
    inner = data.get(nested)
    if not isinstance(inner, dict):
        raise WalletTokenError(f"{where}{nested} must be an object")
    return inner


def _google(token: dict[str, Any]) -> dict[str, Any]:
    key = _object(token, ("protocolVersion", "signature", "signedMessage"),
                  ("protocolVersion", "ECv2"), "intermediateSigningKey", "")
    _strings(key, ("signedKey",), "intermediateSigningKey.")
    signatures = key.get("signatures")
    if not (isinstance(signatures, list) and signatures
            and all(isinstance(s, str) and s for s in signatures)):
        raise WalletTokenError("intermediateSigningKey.signatures must be a list of strings")
    try:
        message = json.loads(token["signedMessage"])
    except ValueError:
        raise WalletTokenError("signedMessage must be a JSON text") from None
    if not isinstance(message, dict):
        raise WalletTokenError("signedMessage must hold a JSON object")
    _strings(message, ("encryptedMessage", "ephemeralPublicKey", "tag"), "signedMessage.")
    return {k: token[k] for k in _GOOGLE_KEYS}


def _apple(payment_data: dict[str, Any]) -> dict[str, Any]:
    header = _object(payment_data, ("version", "data", "signature"), ("version", "EC_v1"),
                     "header", "paymentData.")
    _strings(header, ("ephemeralPublicKey", "publicKeyHash", "transactionId"),
             "paymentData.header.")
    return {k: payment_data[k] for k in _APPLE_KEYS}


def is_test_decline(token: str, prefix: str = "tok_decline") -> bool:
    """The test-token rule for any token shape: an opaque token that starts with `prefix`, or a
    wallet token whose `signature` does (a real signature is base64, never `tok_...`)."""
    try:
        wallet = parse_wallet_token(token)
    except WalletTokenError:
        return False
    return (wallet.signature if wallet else token).startswith(prefix)
