"""Wallet payment tokens as the wallet SDKs return them to a driver app (test values).

`google_pay_token()` is the JSON text of `tokenizationData.token` (Google's ECv2 example);
`apple_pay_token()` is an Apple Pay payment token (`paymentData`, `paymentMethod`,
`transactionIdentifier`). A signature starting with "tok_decline" is declined by the sandbox and
by the fake Pagar.me.
"""

from __future__ import annotations

import json
from typing import Any

SIGNED_MESSAGE = json.dumps({"encryptedMessage": "mKOoXwi8OavZ", "tag": "jpGz1F1Bcoi=",
                             "ephemeralPublicKey": "BJatyFvFPPD21l8="})
APPLE_MERCHANT = "merchant.com.example.ev"


def google_pay_token(signature: str = "MEQCIH6Q4OwQ0jAceFEkGF0JID6sJNXxOEi4r==") -> str:
    """Google Pay's `PaymentMethodToken` (protocolVersion ECv2), serialized as Google does."""
    return json.dumps({
        "protocolVersion": "ECv2",
        "signature": signature,
        "intermediateSigningKey": {
            "signedKey": json.dumps({"keyExpiration": "1542323393147", "keyValue": "MFkwEw=="}),
            "signatures": ["MEYCIQCO2EIi48s8VTH+ilMEpoXLFfkxAwHjfPSCVED="],
        },
        "signedMessage": SIGNED_MESSAGE,
    })


def apple_pay_token(signature: str = "MIAGCSqGSIb3DQEHAqCAMIACAQExDzAN") -> dict[str, Any]:
    """An Apple Pay payment token as PassKit / Apple Pay JS returns it."""
    return {
        "paymentData": {
            "version": "EC_v1",
            "data": "V7OcjttPJnUJaQH7x7OjbIeZSINuc",
            "signature": signature,
            "header": {
                "ephemeralPublicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEY69lq==",
                "publicKeyHash": "B/vXPu6KfGjbxJVTQUtBOzkxmqhnT+TwQfdb5U9lsdA=",
                "transactionId": "715a0386c307bf22907496790cef4bd169b1182460d58eef97bbad27",
            },
        },
        "paymentMethod": {"displayName": "Visa 0010", "network": "Visa", "type": "credit"},
        "transactionIdentifier": "715A0386C307BF22907496790CEF4BD169B1182460D58EEF97BBAD27",
    }


def google_pay_payload(signature: str = "MEQCIH6Q4OwQ0jAceFEkGF0JID6sJNXxOEi4r==",
                       ) -> dict[str, Any]:
    """What Pagar.me's Google Pay page wants in `credit_card.payload` for `google_pay_token()`."""
    token = json.loads(google_pay_token(signature))
    return {"type": "google_pay", "google_pay": {
        "version": "EC_v2",
        "data": "mKOoXwi8OavZ",
        "intermediate_signing_key": {
            "signed_key": token["intermediateSigningKey"]["signedKey"],
            "signatures": token["intermediateSigningKey"]["signatures"],
        },
        "signature": signature,
        "signed_message": SIGNED_MESSAGE,
    }}


def apple_pay_payload(signature: str = "MIAGCSqGSIb3DQEHAqCAMIACAQExDzAN") -> dict[str, Any]:
    """What Pagar.me's Apple Pay page wants in `credit_card.card.payload`."""
    data = apple_pay_token(signature)["paymentData"]
    return {"type": "apple_pay", "apple_pay": {
        "version": "EC_v1",
        "merchant_identifier": APPLE_MERCHANT,
        "header": {
            "transaction_id": data["header"]["transactionId"],
            "ephemeral_public_key": data["header"]["ephemeralPublicKey"],
            "public_key_hash": data["header"]["publicKeyHash"],
        },
        "data": data["data"],
        "signature": signature,
    }}
