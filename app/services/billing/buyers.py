"""The buyer an invoice is made out to: structured data, tax ids checked per country."""

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, select
from stdnum.exceptions import ValidationError as TaxIdError
from stdnum.util import get_cc_module

from app.clock import utcnow
from app.models import ApplicantGroup, Application, BuyerBilling, Edition
from app.platform.audit import record_change
from app.services.errors import InvalidInput, NotFound
from app.services.registry.countries import alpha_2, country_name, parse_country

# DIR3 codes: nine letters and digits (e.g. L01080193, the city council of Barcelona).
DIR3_CODE = re.compile(r"[A-Z0-9]{9}")
# Leitweg-ID: coarse address, optional fine address, two check digits (KoSIT, v2.0).
LEITWEG_ID = re.compile(r"[0-9]{2,12}(-[0-9A-Z]{1,30})?-[0-9]{2}")
# Peppol participant: an ISO 6523 ICD or EAS code, a colon, the identifier.
PEPPOL_ID = re.compile(r"[0-9]{4}:[^\s:]{1,50}")


class Dir3In(BaseModel):
    """The three DIR3 codes of a Spanish public body."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    accounting_office: str = Field(min_length=1, max_length=20)
    managing_body: str = Field(min_length=1, max_length=20)
    processing_unit: str = Field(min_length=1, max_length=20)


class BillingIn(BaseModel):
    """Who the next invoice is made out to (PATCH /api/v1/applications/{id}/billing)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    legal_name: str = Field(min_length=1, max_length=200)
    tax_id: str = Field(default="", max_length=40)
    address_line: str = Field(min_length=1, max_length=300)
    city: str = Field(min_length=1, max_length=100)
    postcode: str = Field(default="", max_length=20)
    country: str = Field(min_length=2, max_length=60)
    buyer_reference: str = Field(default="", max_length=100)
    purchase_order: str = Field(default="", max_length=100)
    dir3: Dir3In | None = None
    leitweg_id: str = Field(default="", max_length=50)
    peppol_id: str = Field(default="", max_length=100)
    wants_e_invoice: bool = False


def checked_tax_id(tax_id: str, country: str, *, field: str = "tax_id") -> str:
    """The tax id in its country's compact form, its check digits verified where the country has
    a known format (python-stdnum); InvalidInput naming `field` otherwise."""
    text = tax_id.strip()
    if not text:
        return ""
    code = alpha_2(country)
    module = get_cc_module(code.lower(), "vat") if code else None
    if module is None:
        if not re.fullmatch(r"[0-9A-Za-z./ -]{2,40}", text):
            raise InvalidInput(
                f"{text!r} is not a tax id.", fields={field: "Use letters, digits and dashes."}
            )
        return text
    try:
        return str(module.validate(text))
    except TaxIdError as error:
        name = country_name(country)
        why = str(error).rstrip(".").lower()
        raise InvalidInput(
            f"{text!r} is not a valid tax id in {name}.",
            fields={field: f"This is not a valid tax id in {name} ({why})."},
        ) from None


def _checked_routing(data: BillingIn) -> dict[str, str]:
    fields: dict[str, str] = {}
    codes = {"accounting_office": "", "managing_body": "", "processing_unit": ""}
    if data.dir3 is not None:
        for key in codes:
            value = getattr(data.dir3, key).upper()
            if not DIR3_CODE.fullmatch(value):
                fields[f"dir3.{key}"] = "A DIR3 code is nine letters and digits, e.g. L01080193."
            codes[key] = value
    leitweg = data.leitweg_id.upper()
    if leitweg and not LEITWEG_ID.fullmatch(leitweg):
        fields["leitweg_id"] = "A Leitweg-ID looks like 04011000-1234512345-06."
    if data.peppol_id and not PEPPOL_ID.fullmatch(data.peppol_id):
        fields["peppol_id"] = "A Peppol participant id looks like 0208:0123456789."
    if fields:
        raise InvalidInput("Some routing codes are not valid.", fields=fields)
    return {**{f"dir3_{key}": value for key, value in codes.items()}, "leitweg_id": leitweg}


def checked_values(data: BillingIn) -> dict[str, Any]:
    """The buyer data as stored: country as alpha-3, tax id checked and compact, codes upper-case;
    InvalidInput naming each field at fault."""
    country = parse_country(data.country)
    values: dict[str, Any] = {
        "legal_name": data.legal_name,
        "tax_id": checked_tax_id(data.tax_id, country),
        "address_line": data.address_line,
        "city": data.city,
        "postcode": data.postcode,
        "country": country,
        "buyer_reference": data.buyer_reference,
        "purchase_order": data.purchase_order,
        "peppol_id": data.peppol_id,
        "wants_e_invoice": data.wants_e_invoice,
        **_checked_routing(data),
    }
    return values


def _save(
    session: Session,
    *,
    row: BuyerBilling | None,
    data: BillingIn,
    actor: str,
    application_id: int | None = None,
    group_id: int | None = None,
) -> BuyerBilling:
    values = checked_values(data)
    before = billing_values(row) if row is not None else None
    if row is None:
        row = BuyerBilling(
            application_id=application_id, group_id=group_id, updated_by=actor, **values
        )
    else:
        for key, value in values.items():
            setattr(row, key, value)
    row.updated_by = actor
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="billing.updated",
        entity="application" if application_id else "applicant_group",
        entity_id=application_id or group_id or 0,
        before=before,
        after=billing_values(row),
    )
    return row


def application_billing(session: Session, application_id: int) -> BuyerBilling | None:
    """The buyer an application's next invoice is made out to, if one was given."""
    return session.exec(
        select(BuyerBilling).where(BuyerBilling.application_id == application_id)
    ).first()


def group_billing(session: Session, group_id: int) -> BuyerBilling | None:
    """The buyer a group's next invoice is made out to, if one was given."""
    return session.exec(select(BuyerBilling).where(BuyerBilling.group_id == group_id)).first()


def save_application_billing(
    session: Session, *, application: Application, data: BillingIn, actor: str
) -> BuyerBilling:
    """Set who the application's next invoice is made out to; issued invoices keep their copy."""
    return _save(
        session,
        row=application_billing(session, application.id or 0),
        data=data,
        actor=actor,
        application_id=application.id,
    )


def edition_group(session: Session, *, edition: Edition, code: str) -> ApplicantGroup:
    """The group with this code in this edition, or NotFound."""
    group = session.exec(
        select(ApplicantGroup).where(
            ApplicantGroup.code == code.strip().upper(), ApplicantGroup.edition_id == edition.id
        )
    ).first()
    if group is None:
        raise NotFound(f"There is no group {code!r} in this edition.")
    return group


def save_group_billing(
    session: Session, *, group: ApplicantGroup, data: BillingIn, actor: str
) -> BuyerBilling:
    """Set who the group's next invoice is made out to; issued invoices keep their copy."""
    return _save(
        session,
        row=group_billing(session, group.id or 0),
        data=data,
        actor=actor,
        group_id=group.id,
    )


def billing_values(row: BuyerBilling) -> dict[str, Any]:
    """The buyer data as the API shows it."""
    dir3 = None
    if row.dir3_accounting_office:
        dir3 = {
            "accounting_office": row.dir3_accounting_office,
            "managing_body": row.dir3_managing_body,
            "processing_unit": row.dir3_processing_unit,
        }
    return {
        "legal_name": row.legal_name,
        "tax_id": row.tax_id,
        "address_line": row.address_line,
        "city": row.city,
        "postcode": row.postcode,
        "country": row.country,
        "buyer_reference": row.buyer_reference,
        "purchase_order": row.purchase_order,
        "dir3": dir3,
        "leitweg_id": row.leitweg_id,
        "peppol_id": row.peppol_id,
        "wants_e_invoice": row.wants_e_invoice,
    }


def buyer_copy(row: BuyerBilling) -> dict[str, Any]:
    """The keys an issued invoice copies from the buyer data (merged over its defaults)."""
    values = billing_values(row)
    # The invoice prints the country under the address, in words.
    address = "\n".join(
        part for part in (row.address_line, f"{row.postcode} {row.city}".strip()) if part
    )
    values.update(
        name=row.legal_name,
        organisation=row.legal_name,
        street=row.address_line,
        address=address,
        country=country_name(row.country),
        country_code=alpha_2(row.country),
        po_number=row.purchase_order,
    )
    values.pop("address_line")
    values.pop("purchase_order")
    return values


def billing_from_form(form: Any, *, prefix: str = "billing_") -> BillingIn | None:
    """The billing fields of a submitted page form, or None when they are all left empty."""

    def value(name: str) -> str:
        return str(form.get(f"{prefix}{name}") or "").strip()

    names = (
        *("legal_name", "tax_id", "address_line", "city", "postcode", "country"),
        *("buyer_reference", "purchase_order", "leitweg_id", "peppol_id"),
    )
    values: dict[str, Any] = {name: value(name) for name in names}
    dir3 = {key: value(f"dir3_{key}") for key in ("accounting_office", "managing_body")}
    dir3["processing_unit"] = value("dir3_processing_unit")
    if not any(values.values()) and not any(dir3.values()):
        return None
    values["dir3"] = dir3 if any(dir3.values()) else None
    values["wants_e_invoice"] = bool(form.get(f"{prefix}wants_e_invoice"))
    return billing_in(values)


def billing_in(values: dict[str, Any]) -> BillingIn:
    """Buyer data checked for shape, or InvalidInput naming each field at fault."""
    try:
        return BillingIn.model_validate(values)
    except ValidationError as error:
        fields = {
            ".".join(str(part) for part in issue["loc"]): issue["msg"] for issue in error.errors()
        }
        raise InvalidInput("Some billing details are missing or too long.", fields=fields) from None


def form_values(row: BuyerBilling | None) -> dict[str, Any]:
    """The stored buyer data as the page forms name their fields."""
    if row is None:
        return {}
    values = billing_values(row)
    values.pop("dir3")
    values.update(
        dir3_accounting_office=row.dir3_accounting_office,
        dir3_managing_body=row.dir3_managing_body,
        dir3_processing_unit=row.dir3_processing_unit,
    )
    return values


def form_errors(error: InvalidInput) -> dict[str, str]:
    """A refusal's field messages keyed as the page forms name their fields."""
    return {name.replace(".", "_"): message for name, message in error.fields.items()}


def submitted_values(form: Any, *, prefix: str = "billing_") -> dict[str, Any]:
    """What a page form sent, to show it again beside its messages."""
    return {
        key[len(prefix) :]: str(value)
        for key, value in form.multi_items()
        if isinstance(key, str) and key.startswith(prefix)
    }
