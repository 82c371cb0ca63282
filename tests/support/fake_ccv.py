"""A fake CCV Payment API (aiohttp) for tests, run on a real port by a fixture.

Written from CCV's documentation (developer.myccv.eu/documentation/payment_api/...; see
billing/gateways/ccv.py for the pages and the assumptions shared with the adapter):
- HTTP Basic with the API key as user and an empty password, else 401 (general/authentication);
- `POST /api/v1/payment` (transactionType "authorise", method "terminal", details {terminalId,
  managementSystemId, accessProtocol}), `GET /api/v1/transaction?reference=`,
  `POST /api/v1/capture {reference, amount}` (amount <= authorised, once),
  `POST /api/v1/reversal {reference}` (an authorise not captured, not reversed twice),
  `POST /api/v1/refund {reference, amount}` (the reference of a capture or sale, never of an
  authorise; amount <= captured - refunded),
  `POST /api/v1/token` / `GET /api/v1/token?reference=` (a card's one-way token, "99" + 16);
- statuses pending | success | failed | manualintervention; every transaction has its own
  `reference`, follow-ups carry `originalReference`;
- `Idempotency-Reference` (at most 50 characters): a POST to payment, capture, refund or
  reversal with a known header and the same body gets the first answer again with no second
  effect; with a different body it is refused 409 (the docs do not say what happens).
  This fake also refuses (400) a POST without the header: the adapter must always send it.
- a terminal payment or token request answers "pending"; the terminal then acts as told by
  `terminal(id).queue(...)` ("approve", "decline", "timeout", with a card token), and CCV posts
  `{"id": reference}` to the request's webhookUrl (general/webhooks). "timeout" leaves the
  payment pending (no webhook) until `expire(reference)` fails it.
- amounts: a decimal string or number with at most two decimals, > 0; anything else is 400.

Test controls: `requests`, `counts` ("payment", "capture", "reversal", "refund", "token", "get",
"replays", "unauthorized", "injected", "no_idempotency"), `fail_next(n, status=500,
after_processing=False)`, `delay` (seconds before answering), `webhooks` (posted hints and
their HTTP status), `settled()` (wait until the terminals finished), `expire(reference)`,
`act(reference, action)` (a cardholder who comes late), `hint_before_answer` (seconds: the
terminal acts at once and the hint is posted before the POST is answered, which waits for the
hint's answer up to that long: CCV's hint overtaking its own answer).
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from aiohttp import BasicAuth, web

DEFAULT_CARD_TOKEN = "991234567890123456"
IDEMPOTENT_PATHS = frozenset({"/api/v1/payment", "/api/v1/capture", "/api/v1/refund",
                              "/api/v1/reversal"})


def _now_ms() -> int:
    return int(time.time() * 1000)


def _reference(prefix: str) -> str:
    return prefix + secrets.token_hex(10).upper() + ".1"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"failureCode": code, "message": message}, status=status)


def _amount(value: Any) -> Decimal | None:
    """A positive amount with at most two decimals (string or JSON number), else None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        return None
    return amount


@dataclass
class FakeTerminal:
    """A terminal: what each next cardholder does, and the card they present."""

    terminal_id: str
    actions: list[tuple[str, str]] = field(default_factory=list)

    def queue(self, action: str, card_token: str = DEFAULT_CARD_TOKEN) -> None:
        """`action`: "approve", "decline" or "timeout"; the card's token for approve."""
        assert action in ("approve", "decline", "timeout"), action
        self.actions.append((action, card_token))

    def next(self) -> tuple[str, str]:
        return self.actions.pop(0) if self.actions else ("approve", DEFAULT_CARD_TOKEN)


class FakeCcv:
    """In-memory CCV Payment API. `app` is the aiohttp application to serve."""

    def __init__(self, api_key: str = "t_fake", management_system_id: str = "MS-1") -> None:
        self.api_key = api_key
        self.management_system_id = management_system_id
        self.base_url = ""  # set by the fixture: http://host:port
        self.transactions: dict[str, dict[str, Any]] = {}
        self.terminals: dict[str, FakeTerminal] = {}
        self.requests: list[dict[str, Any]] = []
        self.webhooks: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.delay: float = 0.0
        self.terminal_delay: float = 0.01  # seconds the cardholder takes at the terminal
        # > 0: the terminal acts at once and CCV posts the hint BEFORE it answers the POST
        # (payment or token); the answer waits for the hint's answer, at most this many s
        self.hint_before_answer: float = 0.0
        self.default_actions: list[str] = []  # queued on every terminal when first seen
        self._idempotent: dict[str, tuple[str, Any, int, dict[str, Any]]] = {}
        self._failures: list[tuple[int, bool]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = web.Application(middlewares=[self._middleware])
        self.app.add_routes([
            web.post("/api/v1/payment", self._payment),
            web.post("/api/v1/capture", self._capture),
            web.post("/api/v1/reversal", self._reversal),
            web.post("/api/v1/refund", self._refund),
            web.post("/api/v1/token", self._token),
            web.get("/api/v1/transaction", self._get),
            web.get("/api/v1/token", self._get),
        ])
        self.app.on_cleanup.append(self._cleanup)

    # -- controls --------------------------------------------------------------------------

    def terminal(self, terminal_id: str) -> FakeTerminal:
        if terminal_id not in self.terminals:
            self.terminals[terminal_id] = FakeTerminal(terminal_id)
            for action in self.default_actions:
                self.terminals[terminal_id].queue(action)
        return self.terminals[terminal_id]

    def fail_next(self, n: int, status: int = 500, *, after_processing: bool = False) -> None:
        """Answer the next `n` requests with `status` (after carrying them out, if asked)."""
        self._failures.extend([(status, after_processing)] * n)

    async def settled(self) -> None:
        """Wait until every terminal has acted (and its webhook was posted)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def expire(self, reference: str) -> dict[str, Any]:
        """A timed-out terminal payment gives up: failed, "expired", with its webhook."""
        txn = self.transactions[reference]
        assert txn["status"] == "pending", txn
        self._finish(txn, "failed", failureCode="expired")
        await self._post_webhook(txn)
        return copy.deepcopy(txn)

    async def act(self, reference: str, action: str,
                  card_token: str = DEFAULT_CARD_TOKEN) -> None:
        """A pending terminal transaction gets its cardholder now ("approve" or "decline"),
        with its webhook: a card presented late."""
        txn = self.transactions[reference]
        assert txn["status"] == "pending", txn
        await self._act(txn, action, card_token)

    def mutating_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    # -- middleware: record, auth, failures, idempotency -----------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append({"method": request.method, "path": request.path,
                              "query": dict(request.query), "headers": dict(request.headers),
                              "body": body, "raw": raw.decode(errors="replace")})
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self._authorized(request.headers.get("Authorization", "")):
            self.counts["unauthorized"] += 1
            return _error(401, "unauthorized", "Invalid API key")
        failure = self._failures.pop(0) if self._failures else None
        if failure and not failure[1]:
            self.counts["injected"] += 1
            return _error(failure[0], "internal_error", "An internal error occurred")
        if request.method != "POST":
            return await handler(request)
        if not isinstance(body, dict):
            return _error(400, "invalid_request", "The body must be a JSON object")
        key = request.headers.get("Idempotency-Reference", "")
        if not key:
            self.counts["no_idempotency"] += 1
            return _error(400, "missing_idempotency", "Idempotency-Reference is required here")
        if len(key) > 50:
            return _error(400, "invalid_idempotency", "Idempotency-Reference over 50 characters")
        idempotent = request.path in IDEMPOTENT_PATHS
        if idempotent and key in self._idempotent:
            path, first_body, status, payload = self._idempotent[key]
            if (path, first_body) != (request.path, body):
                return _error(409, "idempotency_conflict", "Same reference, different request")
            self.counts["replays"] += 1
            response: web.StreamResponse = web.json_response(copy.deepcopy(payload),
                                                             status=status)
        else:
            response = await handler(request)
            if idempotent and isinstance(response, web.Response) and response.status < 500:
                assert response.text is not None
                self._idempotent[key] = (request.path, body, response.status,
                                         json.loads(response.text))
        if failure:  # carried out, but the client never learns it
            self.counts["injected"] += 1
            return _error(failure[0], "internal_error", "An internal error occurred")
        return response

    def _authorized(self, header: str) -> bool:
        try:
            given = BasicAuth.decode(header, encoding="utf-8")
        except ValueError:
            return False
        return given.login == self.api_key and given.password == ""

    # -- routes ----------------------------------------------------------------------------

    def _terminal_details(self, body: dict[str, Any]) -> dict[str, Any] | web.Response:
        details = body.get("details")
        if not isinstance(details, dict) or not details.get("terminalId"):
            return _error(400, "invalid_request", "details.terminalId is required")
        if details.get("accessProtocol") != "OPI_NL":
            return _error(400, "invalid_request", "details.accessProtocol must be OPI_NL")
        if details.get("managementSystemId") != self.management_system_id:
            return _error(400, "invalid_request", "unknown details.managementSystemId")
        return details

    async def _payment(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("transactionType") != "authorise" or body.get("method") != "terminal":
            return _error(400, "invalid_request", "this fake knows terminal authorisations")
        amount = _amount(body.get("amount"))
        if amount is None:
            return _error(400, "invalid_amount", "amount must be positive with two decimals")
        if not isinstance(body.get("currency"), str) or len(body["currency"]) != 3:
            return _error(400, "invalid_request", "currency must be an ISO 4217 code")
        details = self._terminal_details(body)
        if isinstance(details, web.Response):
            return details
        self.counts["payment"] += 1
        txn = self._new("authorise", "TL", amount, body, details=dict(details))
        view = self._view(txn)  # what CCV answers: pending, the terminal has just been asked
        await self._hint_first(self._run_terminal(txn))
        return web.json_response(view, status=201)

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("method") != "terminal":
            return _error(400, "invalid_request", "this fake knows terminal tokens")
        details = self._terminal_details(body)
        if isinstance(details, web.Response):
            return details
        self.counts["token"] += 1
        txn = self._new("token", "TK", None, body, details=dict(details))
        view = self._view(txn)
        await self._hint_first(self._run_terminal(txn))
        return web.json_response(view, status=201)

    async def _capture(self, request: web.Request) -> web.Response:
        body = await request.json()
        original = self.transactions.get(str(body.get("reference")))
        amount = _amount(body.get("amount"))
        if original is None:
            return _error(404, "not_found", "unknown reference")
        if amount is None:
            return _error(400, "invalid_amount", "amount must be positive with two decimals")
        if (original["type"] != "authorise" or original["status"] != "success"
                or original.get("_captured") or original.get("_reversed")):
            return _error(400, "invalid_state", "only an open, approved authorise is captured")
        if amount > original["_authorised"]:
            return _error(400, "invalid_amount", "capture above the authorised amount")
        self.counts["capture"] += 1
        original["_captured"] = amount
        txn = self._new("capture", "CP", amount, body, original=original)
        self._finish(txn, "success")
        return web.json_response(self._view(txn), status=201)

    async def _reversal(self, request: web.Request) -> web.Response:
        body = await request.json()
        original = self.transactions.get(str(body.get("reference")))
        if original is None:
            return _error(404, "not_found", "unknown reference")
        if (original["type"] != "authorise" or original["status"] != "success"
                or original.get("_captured") or original.get("_reversed")):
            return _error(400, "invalid_state", "only an open, approved authorise is reversed")
        self.counts["reversal"] += 1
        original["_reversed"] = True
        txn = self._new("reversal", "RV", original["_authorised"], body, original=original)
        self._finish(txn, "success")
        return web.json_response(self._view(txn), status=201)

    async def _refund(self, request: web.Request) -> web.Response:
        body = await request.json()
        original = self.transactions.get(str(body.get("reference")))
        amount = _amount(body.get("amount"))
        if original is None:
            return _error(404, "not_found", "unknown reference")
        if amount is None:
            return _error(400, "invalid_amount", "amount must be positive with two decimals")
        if original["type"] not in ("capture", "sale") or original["status"] != "success":
            # refunds/basic_operations: only a sale or a capture is refunded (an authorise
            # is reversed); the reference names that transaction
            return _error(400, "invalid_state", "only a successful sale or capture is refunded")
        if amount > original["amount"] - original.get("_refunded", Decimal(0)):
            return _error(400, "refund_limit", "refund above what was captured")
        self.counts["refund"] += 1
        original["_refunded"] = original.get("_refunded", Decimal(0)) + amount
        txn = self._new("refund", "RF", amount, body, original=original)
        self._finish(txn, "success")
        return web.json_response(self._view(txn), status=201)

    async def _get(self, request: web.Request) -> web.Response:
        self.counts["get"] += 1
        txn = self.transactions.get(request.query.get("reference", ""))
        if txn is None:
            return _error(404, "not_found", "unknown reference")
        return web.json_response(self._view(txn))

    # -- transactions and the terminal -----------------------------------------------------

    def _new(self, kind: str, prefix: str, amount: Decimal | None, body: dict[str, Any], *,
             details: dict[str, Any] | None = None,
             original: dict[str, Any] | None = None) -> dict[str, Any]:
        now = _now_ms()
        txn: dict[str, Any] = {
            "reference": _reference(prefix), "type": kind, "status": "pending",
            "created": now, "lastUpdate": now,
            "currency": (original or body).get("currency"),
            "merchantOrderReference": (original or body).get("merchantOrderReference"),
            "description": body.get("description") or (original or {}).get("description"),
            "method": "terminal", "_webhook": body.get("webhookUrl"),
        }
        if amount is not None:
            txn["amount"] = amount
        if details is not None:
            txn["details"] = details
        if original is not None:
            txn["originalReference"] = original["reference"]
        self.transactions[txn["reference"]] = txn
        return txn

    @staticmethod
    def _finish(txn: dict[str, Any], status: str, **fields: Any) -> None:
        txn.update(status=status, lastUpdate=_now_ms(), statusFinalDate=_now_ms(), **fields)

    def _run_terminal(self, txn: dict[str, Any]) -> asyncio.Task[None] | None:
        action, card_token = self.terminal(txn["details"]["terminalId"]).next()
        if action == "timeout":
            return None  # the cardholder never comes: pending until expire()
        task = asyncio.get_running_loop().create_task(self._act(txn, action, card_token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _hint_first(self, task: asyncio.Task[None] | None) -> None:
        """With `hint_before_answer`, hold the POST's answer until the terminal acted and its
        hint was answered (or the time is up: a receiver that waits for this very answer)."""
        if task is not None and self.hint_before_answer > 0:
            await asyncio.wait({task}, timeout=self.hint_before_answer)

    async def _act(self, txn: dict[str, Any], action: str, card_token: str) -> None:
        if not self.hint_before_answer:
            await asyncio.sleep(self.terminal_delay)
        if action == "decline":
            self._finish(txn, "failed", failureCode="rejected")
        else:
            if txn["type"] == "authorise":
                txn["_authorised"] = txn["amount"]
                txn["details"].update(authorisedAmount=txn["amount"],
                                      maskedPan="4111XXXXXXXX" + card_token[-4:])
            self._finish(txn, "success", token=card_token)
        await self._post_webhook(txn)

    async def _post_webhook(self, txn: dict[str, Any]) -> None:
        url = txn.get("_webhook")
        if not url:
            return
        entry: dict[str, Any] = {"url": url, "body": {"id": txn["reference"]},
                                 "before_answer": bool(self.hint_before_answer)}
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                entry["status"] = (await client.post(url, json=entry["body"])).status_code
        except httpx.HTTPError as exc:
            entry["error"] = repr(exc)
        self.webhooks.append(entry)

    @staticmethod
    def _view(txn: dict[str, Any]) -> dict[str, Any]:
        """The transaction as CCV shows it: amounts as JSON numbers, no internal fields."""
        view = {k: v for k, v in txn.items() if not k.startswith("_")}
        if "amount" in view:
            view["amount"] = float(view["amount"])
        if "details" in view:
            view["details"] = {k: float(v) if isinstance(v, Decimal) else v
                               for k, v in view["details"].items()}
        return copy.deepcopy(view)

    async def _cleanup(self, _app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.support.fake_ccv`: the fake on a port, to follow the README's terminal
    walkthrough without a CCV account (every terminal approves the default card, or acts as
    `--actions` says, one per request: approve, decline, timeout)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_ccv",
                                     description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", default="t_fake")
    parser.add_argument("--management-system-id", default="MS-1")
    parser.add_argument("--terminal-delay", type=float, default=2.0,
                        help="seconds the cardholder takes at the terminal (default 2)")
    parser.add_argument("--actions", default="",
                        help="comma-separated actions of the next requests, then approve")
    args = parser.parse_args(argv)
    fake = FakeCcv(api_key=args.api_key, management_system_id=args.management_system_id)
    fake.terminal_delay = args.terminal_delay
    for action in filter(None, args.actions.split(",")):
        fake.default_actions.append(action.strip())
    fake.base_url = f"http://{args.host}:{args.port}"
    print(f"fake CCV on {fake.base_url} (api key {args.api_key!r}, "
          f"managementSystemId {args.management_system_id!r})", flush=True)
    web.run_app(fake.app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
