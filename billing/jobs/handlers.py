"""What each money job does: REFUND and OPERATION run their recorded operation through the
ledger (`billing.ledger.Ledger.run`, with the operation's own key); RECEIPT renders, stores and
mails the session's receipt from billing's own data."""

from __future__ import annotations

import secrets

from billing.jobs.outbox import DONE, MoneyJobs, Outcome, give_up, retry
from billing.ledger import Ledger, Request
from billing.models import (
    Job,
    JobKind,
    Method,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Receipt,
    Session,
    SessionStatus,
)
from billing.receipts import (
    Mailer,
    MailError,
    make_message_id,
    receipt_data_from_session,
    render_receipt,
)
from billing.settings import BillingConfig
from billing.store.ports import BillingStore
from csms.domain import utcnow

P = PaymentStatus
SETTLED = frozenset({P.CAPTURED, P.REFUNDED, P.PARTIALLY_REFUNDED, P.WAIVED, P.PAID})
ENDED = frozenset({SessionStatus.COMPLETED, SessionStatus.CANCELED, SessionStatus.FAILED})


class JobHandlers:
    def __init__(self, settings: BillingConfig, store: BillingStore, jobs: MoneyJobs,
                 ledger: Ledger, mailer: Mailer) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.ledger = ledger
        self.mailer = mailer
        jobs.handlers.update({JobKind.REFUND: self.refund, JobKind.OPERATION: self.operation,
                              JobKind.RECEIPT: self.receipt})

    async def refund(self, job: Job) -> Outcome:
        return await self._run(job, (OperationType.REFUND,), "no such refund operation",
                               "the refund failed")

    async def operation(self, job: Job) -> Outcome:
        """Retry a CAPTURE / VOID whose gateway outcome was unknown, with its stored key. One
        already SUCCEEDED still gets its payment move (a crash may have come between the
        two; the move is a compare-and-set)."""
        return await self._run(job, (OperationType.CAPTURE, OperationType.VOID),
                               "no such operation", "the gateway refused the operation")

    async def _run(self, job: Job, types: tuple[OperationType, ...], missing: str,
                   refused: str) -> Outcome:
        op = await self.store.get_operation(job.payload["operation"])
        if op is None:
            return give_up(missing)
        if op.type not in types:
            return give_up(f"{op.type.value} is not retried by a job")
        if op.status == OperationStatus.SUCCEEDED and op.type == OperationType.REFUND:
            return DONE
        if op.status == OperationStatus.FAILED:  # never act on it: an operator reopens it
            return give_up(op.error or refused)
        session = await self._session(op.session_id)
        charge_id = op.charge_id or session.charge_id
        if op.status == OperationStatus.PENDING and not charge_id:
            return give_up("the session has no gateway charge" if op.type != OperationType.REFUND
                           else "the session has no gateway charge to refund")
        done = await self.ledger.run(
            session.session_id,
            Request(op.type, op.amount, charge_id=charge_id,
                    void_all=session.method == Method.PIX),
            key=op.idempotency_key, attempts=1, hand_off=False)
        if done.result.transient:
            return retry(done.result.error)
        if not done.result.success:
            return give_up(done.result.error)
        await receipt_due(self.store, self.jobs, session.session_id)
        return DONE

    async def receipt(self, job: Job) -> Outcome:
        session = await self._session(job.session_id)
        receipt = await self.store.get_receipt(session.session_id)
        if receipt is None:
            receipt = await self._make_receipt(session)
        if receipt.emailed_at is not None or not session.email:
            return DONE
        try:
            await self.mailer.send(
                to=session.email,
                subject=f"Charging receipt #{receipt.number:08d} - {session.station_id}",
                html=receipt.html, text=receipt.text,
                message_id=make_message_id(f"receipt-{session.session_id}",
                                           self.settings.mail.from_address))
        except MailError as exc:
            return retry(str(exc)) if exc.transient else give_up(str(exc))
        await self.store.mark_receipt_emailed(session.session_id, utcnow())
        return DONE

    async def _make_receipt(self, session: Session) -> Receipt:
        """From the session alone: its transaction's times were recorded when it stopped."""
        refunds = [(op.amount, op.updated_at) for op in
                   await self.store.list_operations(session.session_id)
                   if op.type == OperationType.REFUND and op.status == OperationStatus.SUCCEEDED]
        now = utcnow()

        def render(number: int) -> tuple[str, str]:
            data = receipt_data_from_session(
                session, receipt_number=number, issued_at=now,
                operator=self.settings.receipts, refunds=refunds,
                started_at=session.charging_started_at or session.created_at,
                stopped_at=session.stopped_at or session.ended_at)
            return render_receipt(data)

        return await self.store.create_receipt(session.session_id, secrets.token_urlsafe(24),
                                               "", "", now, render=render)

    async def _session(self, session_id: str) -> Session:
        session = await self.store.get_session(session_id)
        if session is None:
            raise LookupError(f"unknown session {session_id}")
        return session


async def receipt_due(store: BillingStore, jobs: MoneyJobs, session_id: str) -> None:
    """Once a session has ended and its money has settled, its receipt is due."""
    session = await store.get_session(session_id)
    if session is None or session.status not in ENDED or session.payment_status not in SETTLED:
        return
    if session.payment_status == P.PAID and session.status != SessionStatus.COMPLETED:
        return  # a PIX refund is still to come
    pending = [op for op in await store.list_operations(session_id)
               if op.status == OperationStatus.PENDING]
    if pending:
        return  # e.g. the PIX refund of the unused part has not settled yet
    if session.captured_amount == 0 and session.refunded_amount == 0 and \
            session.payment_status != P.WAIVED:
        return  # nothing was charged
    await jobs.submit(JobKind.RECEIPT, f"receipt:{session_id}", session_id)
