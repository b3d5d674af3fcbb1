"""Card payments: "Pay by card" from the portal, Stripe's return pages, and its webhook."""

import time
from typing import Annotated

import stripe
from fastapi import APIRouter, Depends, Form, Query, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response

from app.config import Settings
from app.services.billing import card_payments
from app.services.errors import Conflict, NotFound
from app.services.registrations.applications import application_for_token
from app.web.dependencies import SessionDep, SettingsDep
from app.web.security import verify_csrf

router = APIRouter(include_in_schema=False)
# The portal's forms carry the CSRF token; the webhook carries Stripe's signature instead.
PAGE = [Depends(verify_csrf)]

RETURN_MESSAGES = {
    "guaranteed": "Payment received: your place is guaranteed.",
    "received": "Payment received. The course office will write to you about your place.",
    "processing": (
        "Payment is processing: your bank confirms it in a few days, and we write to you then."
    ),
}


def _require_stripe(settings: Settings) -> None:
    if not settings.stripe_enabled:
        raise NotFound("Card payments are not offered.")


def _client(settings: Settings) -> stripe.StripeClient:
    return card_payments.stripe_client(
        api_key=settings.stripe_secret_key, api_base=settings.stripe_api_base
    )


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent: the signature covers these bytes, not a re-encoding."""
    return await request.body()


@router.post("/stripe/webhook")
def stripe_webhook(
    body: Annotated[bytes, Depends(raw_body)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Stripe's events, acted on once each after their signature is checked."""
    _require_stripe(settings)
    if card_payments.signed_in_the_future(request.headers.get("stripe-signature"), now=time.time()):
        return JSONResponse(
            {"detail": "The Stripe-Signature header is stamped ahead of the tolerance."},
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    try:
        event = stripe.Webhook.construct_event(
            body,
            request.headers.get("stripe-signature"),
            settings.stripe_webhook_secret,
            tolerance=card_payments.WEBHOOK_TOLERANCE_SECONDS,
            api_key=settings.stripe_secret_key,
        )
    except stripe.SignatureVerificationError:
        return JSONResponse(
            {"detail": "The Stripe-Signature header is missing, wrong or too old."},
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    except ValueError:
        return JSONResponse(
            {"detail": "The body is not a Stripe event."}, status_code=status.HTTP_400_BAD_REQUEST
        )
    outcome = card_payments.handle_event(session, event=event.to_dict())
    return JSONResponse({"received": True, "outcome": outcome})


@router.post("/portal/{token}/pay-by-card", dependencies=PAGE)
def pay_by_card(
    token: str,
    invoice: Annotated[str, Form(max_length=40)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Send the applicant to Stripe Checkout for what is still due on one of their invoices."""
    _require_stripe(settings)
    application = application_for_token(session, token, secret_key=settings.secret_key)
    portal = f"{settings.base_url}/portal/{token}"
    try:
        url = card_payments.start_checkout(
            session,
            application=application,
            invoice=card_payments.invoice_for_application(session, application, invoice),
            success_url=f"{portal}/card-payment/success?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=f"{portal}/card-payment/cancelled",
            client=_client(settings),
        )
    except (Conflict, card_payments.CardPaymentUnavailable) as exc:
        request.session["flash"] = exc.message
        return RedirectResponse(f"/portal/{token}", status_code=status.HTTP_303_SEE_OTHER)
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


@router.get("/portal/{token}/card-payment/success", dependencies=PAGE)
def card_payment_success(
    token: str,
    session_id: Annotated[str, Query(min_length=1, max_length=255)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Back from Stripe: record the payment if the webhook has not yet, and say where it stands."""
    _require_stripe(settings)
    application = application_for_token(session, token, secret_key=settings.secret_key)
    try:
        outcome = card_payments.return_from_checkout(
            session,
            application=application,
            checkout_session_id=session_id,
            client=_client(settings),
        )
    except card_payments.CardPaymentUnavailable as exc:
        request.session["flash"] = exc.message
    else:
        request.session["flash"] = RETURN_MESSAGES[outcome]
    return RedirectResponse(f"/portal/{token}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/portal/{token}/card-payment/cancelled", dependencies=PAGE)
def card_payment_cancelled(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Back from Stripe without paying."""
    _require_stripe(settings)
    application_for_token(session, token, secret_key=settings.secret_key)
    request.session["flash"] = "Card payment cancelled; nothing was charged."
    return RedirectResponse(f"/portal/{token}", status_code=status.HTTP_303_SEE_OTHER)
