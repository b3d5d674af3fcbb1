"""Applying in French and in Spanish: the switcher, the form, the receipt page and e-mail;
then the certificate, its e-mail and the portal in the language the applicant chose."""

import io
import re
from datetime import date

import httpx2 as httpx
import pytest
from pypdf import PdfReader

from tests.e2e.conftest import LiveServer, log_in, open_edition_slug, screenshot
from tests.e2e.test_application_journey import portal_link_from_outbox
from tests.e2e.test_certificate_journey import api_token

pytestmark = pytest.mark.e2e

MOTIVATION = (
    "I lead our city's partnerships with other metropolitan governments and want to write "
    "our first international strategy with what I learn."
)
# What the applicant reads and types in each language, and what the receipt must say.
LANGUAGES = {
    "fr": {
        "switch": "Français",
        "apply": "Postuler à cette édition",
        "given": "Prénom",
        "family": "Nom de famille",
        "email": "Adresse e-mail",
        "find": "Trouvez votre organisation",
        "job": "Fonction",
        "why": "Pourquoi souhaitez-vous participer ?",
        "consent": "J'accepte que Metropolis",
        "price": "Tarif membre",
        "send": "Envoyer ma candidature",
        "received": "Merci, nous avons bien reçu votre candidature.",
        "status": "Reçue, en cours d'examen",
        "subject": "Nous avons bien reçu votre candidature",
        "greeting": "Bonjour Ama Banda,",
        "signature": "Secrétariat du cours de Metropolis",
        "certificate_subject": "Votre certificat du",
        "certificate_mail": "Félicitations pour avoir achevé le",
        "your_certificate": "Votre certificat",
        "download": "Télécharger mon certificat (PDF)",
        "pdf": ["Certificat", "de réussite", "Nous certifions que", "Délivré le"],
        "valid": "Certificat valable",
    },
    "es": {
        "switch": "Español",
        "apply": "Solicitar plaza en esta edición",
        "given": "Nombre",
        "family": "Apellidos",
        "email": "Correo electrónico",
        "find": "Busque su organización",
        "job": "Cargo",
        "why": "¿Por qué desea participar?",
        "consent": "Acepto que Metropolis",
        "price": "Tarifa de miembro",
        "send": "Enviar mi solicitud",
        "received": "Gracias, hemos recibido su solicitud.",
        "status": "Recibida, en evaluación",
        "subject": "Hemos recibido su solicitud",
        "greeting": "Estimado/a Ama Banda:",
        "signature": "Secretaría del curso de Metropolis",
        "certificate_subject": "Su certificado del",
        "certificate_mail": "Enhorabuena por haber completado el",
        "your_certificate": "Su certificado",
        "download": "Descargar mi certificado (PDF)",
        "pdf": ["Certificado", "de finalización", "Se certifica que", "Expedido el"],
        "valid": "Certificado válido",
    },
}


def field(label: str) -> re.Pattern[str]:
    """A field's whole label, with or without the mark of a required field."""
    return re.compile(rf"^{re.escape(label)}\s*\*?$")


@pytest.mark.parametrize("language", ["fr", "es"])
def test_an_applicant_switches_language_applies_and_gets_the_receipt_in_it(
    page, live_server: LiveServer, language: str
) -> None:  # type: ignore[no-untyped-def]
    words = LANGUAGES[language]
    slug = open_edition_slug(live_server)
    email = f"ama.{language}.{live_server.database}@barcelona.example"

    page.goto(f"/editions/{slug}")
    switcher = page.get_by_role("navigation", name="Language")
    switcher.get_by_role("link", name=words["switch"]).click()
    page.wait_for_url(f"**lang={language}")
    assert page.locator("html").get_attribute("lang") == language
    page.get_by_role("link", name=words["apply"]).click()

    page.get_by_label(field(words["given"])).fill("Ama")
    page.get_by_label(field(words["family"])).fill("Banda")
    page.get_by_label(field(words["email"])).fill(email)
    page.get_by_label(field(words["find"])).fill("Barcel")
    page.get_by_label("Barcelona City Council").check()
    page.locator("#price").get_by_text(words["price"]).first.wait_for()
    page.get_by_label(field(words["job"])).fill("International relations officer")
    page.get_by_label(field(words["why"])).fill(MOTIVATION)
    page.get_by_label(words["consent"]).check()
    screenshot(page, f"apply-{language}-{live_server.database}")
    page.get_by_role("button", name=words["send"]).click()

    page.get_by_text(words["received"]).wait_for()
    assert page.get_by_text(words["status"]).is_visible()
    reference = re.search(r"MD\d{2}-[0-9A-Z]{6}", page.content())
    assert reference
    screenshot(page, f"receipt-{language}-{live_server.database}")

    # The office reads English; the receipt it sent is in the applicant's language.
    page.goto("/admin/login?lang=en")
    log_in(page, live_server)
    page.goto("/admin/outbox")
    page.get_by_role("link", name=f"{words['subject']} {reference.group(0)}").click()
    body = page.locator("pre.mail-text").first.inner_text()
    assert body.startswith(words["greeting"])
    assert words["signature"] in body
    assert "Thank you for applying" not in body

    # The office admits and is paid, then makes the participant eligible (the course has not
    # taken place yet) and issues the certificate, all in English.
    issue_certificate(page, live_server, reference.group(0))
    number = re.search(r"MD\d\d-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]", page.content())
    assert number

    page.goto("/admin/outbox")
    page.get_by_role("link", name=re.compile(re.escape(words["certificate_subject"]))).first.click()
    mail = page.locator("pre.mail-text").first.inner_text()
    assert mail.startswith(words["greeting"])
    assert words["certificate_mail"] in mail
    assert number.group(0) in mail

    # The portal in the applicant's language: the certificate section and its PDF.
    portal = portal_link_from_outbox(page, words["subject"])
    page.goto(f"{portal}?lang={language}")
    page.get_by_role("heading", name=words["your_certificate"], exact=True).wait_for()
    link = page.get_by_role("link", name=words["download"])
    pdf = page.request.get(link.get_attribute("href") or "")
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    text = " ".join(PdfReader(io.BytesIO(pdf.body())).pages[0].extract_text().split())
    for expected in words["pdf"]:
        assert expected in text, (expected, text)
    assert "This is to certify that" not in text
    screenshot(page, f"certificate-portal-{language}-{live_server.database}")

    # The public verification page speaks the visitor's language.
    page.goto(f"/verify/{number.group(0)}?lang={language}")
    page.get_by_role("heading", name=words["valid"]).wait_for()


def issue_certificate(page, live_server: LiveServer, reference: str) -> None:  # type: ignore[no-untyped-def]
    """Admit and pay through the API, override eligibility and issue on the office's page."""
    headers = api_token(live_server)
    base = live_server.url
    found = httpx.get(
        f"{base}/api/v1/applications", params={"q": reference}, headers=headers, timeout=10
    )
    assert found.status_code == 200, found.text
    application_id = found.json()["items"][0]["id"]
    admitted = httpx.post(
        f"{base}/api/v1/applications/{application_id}/decision",
        json={"decision": "admit"},
        headers=headers,
        timeout=30,
    )
    assert admitted.status_code == 200, admitted.text
    invoice = admitted.json()["invoices"][0]
    paid = httpx.post(
        f"{base}/api/v1/invoices/{invoice['number']}/payments",
        json={
            "amount": invoice["total"],
            "received_on": date.today().isoformat(),
            "method": "bank_transfer",
            "reference": invoice["number"],
        },
        headers=headers,
        timeout=30,
    )
    assert paid.status_code == 201, paid.text
    page.goto(f"/admin/applications/{application_id}")
    section = page.locator("#eligibility")
    section.get_by_text("Make eligible despite these conditions").click()
    section.get_by_label("Reason for the override").fill(
        "Attended the same lessons in the previous edition; agreed by the director."
    )
    section.get_by_role("button", name="Override and make eligible").click()
    page.get_by_text("Eligible by override").wait_for()
    page.get_by_role("button", name="Issue the certificate").click()
    page.get_by_text(re.compile(r"Certificate MD\d\d-[0-9A-Z-]+ issued")).wait_for()
