"""Pages, the apply form, e-mails and documents in the applicant's language."""

import io
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlmodel import Session, select

from app.models import Application, AuditEntry, Edition, Module, OutboxMessage
from app.platform.storage import LocalStorage
from app.web.dependencies import app_storage
from tests.conftest import ADMIN_PASSWORD
from tests.factories import open_edition
from tests.routers.office.test_auth import csrf_from, login
from tests.routers.registrations.test_apply import form_data, post_form


def test_the_browser_language_is_used_when_none_was_chosen(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    page = client.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in page.text
    assert "Ouvertes aux candidatures" in page.text
    english = client.get("/", headers={"Accept-Language": "de"})
    assert '<html lang="en">' in english.text
    assert "Open for applications" in english.text


def test_the_switcher_choice_is_kept_and_beats_the_browser(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    page = client.get("/editions/diploma-open?lang=es", headers={"Accept-Language": "fr"})
    assert '<html lang="es">' in page.text
    assert "Cuotas de inscripción" in page.text
    later = client.get("/editions/diploma-open", headers={"Accept-Language": "fr"})
    assert "Cuotas de inscripción" in later.text
    assert 'href="/editions/diploma-open?lang=fr" hreflang="fr"' in later.text
    assert 'aria-current="true">Español</a>' in later.text


def test_an_unknown_language_is_ignored(client: TestClient, session: Session) -> None:
    open_edition(session)
    page = client.get("/?lang=xx", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert '<html lang="en">' in page.text


def test_money_and_dates_on_the_edition_page_follow_the_language(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    english = client.get("/editions/diploma-open?lang=en").text
    assert "1,500.00 EUR" in english
    french = client.get("/editions/diploma-open?lang=fr").text
    assert "1\u202f500,00\u00a0€" in french
    assert "16–20 novembre 2099" in french


def test_form_errors_are_shown_in_the_chosen_language(client: TestClient, session: Session) -> None:
    open_edition(session)
    client.get("/?lang=es")
    response = post_form(client, form_data(given_name="", motivation="short"))
    assert response.status_code == 422
    assert "Introduzca su nombre." in response.text
    assert "Explíquenos en 50 a 2000 caracteres por qué desea participar." in response.text
    assert "Corrija 2 respuestas:" in response.text


def test_applying_in_french_stores_the_language_and_sends_a_french_receipt(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    client.get("/editions/diploma-open/apply?lang=fr")
    response = post_form(client, form_data())
    assert response.status_code == 303, response.text
    portal = client.get(response.headers["location"])
    assert "Merci, nous avons bien reçu votre candidature." in portal.text
    application = session.exec(select(Application)).one()
    assert application.language == "fr"
    mail = session.exec(select(OutboxMessage)).one()
    assert mail.subject == f"Nous avons bien reçu votre candidature {application.reference}"
    assert mail.body_text.startswith("Bonjour Ama Banda,")
    assert '<html lang="fr">' in mail.body_html
    assert "Secrétariat du cours de Metropolis" in mail.body_text


def test_the_portal_speaks_the_applicants_language_on_another_browser(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    client.get("/?lang=es")
    location = post_form(client, form_data()).headers["location"]
    client.cookies.clear()
    page = client.get(location.split("?")[0], headers={"Accept-Language": "en"})
    assert '<html lang="es">' in page.text
    assert "Recibida, en evaluación" in page.text
    chosen = client.get(location.split("?")[0] + "?lang=en")
    assert "Received, under review" in chosen.text


def test_english_mail_is_word_for_word_what_it_was(client: TestClient, session: Session) -> None:
    open_edition(session)
    post_form(client, form_data())
    mail = session.exec(select(OutboxMessage)).one()
    assert mail.subject.startswith("We received your application ")
    assert mail.body_text.startswith("Dear Ama Banda,\n\nThank you for applying to the ")
    assert mail.body_text.endswith("\n\nMetropolis course office")


def test_administrators_enter_course_texts_per_language_with_english_fallback(
    client: TestClient, session: Session, admin_user: object
) -> None:
    edition = open_edition(session)
    module = session.exec(select(Module).where(Module.edition_id == edition.id)).first()
    assert module is not None
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    page = client.get("/admin/editions/diploma-open/translations")
    assert page.status_code == 200
    assert f'for="module-{module.id}-fr-title"' in page.text
    response = client.post(
        "/admin/editions/diploma-open/translations",
        data={
            "csrf_token": csrf_from(page.text),
            "edition-fr-title": "Diplôme en internationalisation pour les autorités locales",
            f"module-{module.id}-es-title": "Las ciudades en un contexto internacional cambiante",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    session.expire_all()
    stored = session.get(Edition, edition.id)
    assert stored is not None
    assert stored.translations == {
        "fr": {"title": "Diplôme en internationalisation pour les autorités locales"}
    }
    french = client.get("/editions/diploma-open?lang=fr").text
    assert "<h1>Diplôme en internationalisation pour les autorités locales" in french
    spanish = client.get("/editions/diploma-open?lang=es").text
    assert "Las ciudades en un contexto internacional cambiante" in spanish
    assert f"<h1>{edition.title}" in spanish  # no Spanish title: English
    audit = session.exec(
        select(AuditEntry).where(AuditEntry.action == "edition.translations_changed")
    ).all()
    assert len(audit) == 2


def test_a_course_text_that_is_too_long_is_refused_next_to_its_field(
    client: TestClient, session: Session, admin_user: object
) -> None:
    open_edition(session)
    login(client, "admin@example.org", ADMIN_PASSWORD)
    page = client.get("/admin/editions/diploma-open/translations")
    response = client.post(
        "/admin/editions/diploma-open/translations",
        data={"csrf_token": csrf_from(page.text), "edition-es-title": "x" * 201},
    )
    assert response.status_code == 422
    assert 'id="edition-es-title-error"' in response.text
    assert "At most 200 characters (201 given)." in response.text


def test_the_invoice_of_a_french_applicant_is_a_french_document(
    client: TestClient, session: Session, admin_user: object, test_app: FastAPI, tmp_path: Path
) -> None:
    # Invoice numbers restart with each test's rolled-back database: a PDF of the same number
    # stored by another test must not be served, so this test has its own files.
    test_app.dependency_overrides[app_storage] = lambda: LocalStorage(tmp_path)
    open_edition(session)
    client.get("/?lang=fr")
    location = post_form(client, form_data(country="FRA")).headers["location"]
    application = session.exec(select(Application)).one()
    login(client, "admin@example.org", ADMIN_PASSWORD)
    detail = client.get(f"/admin/applications/{application.id}")
    admitted = client.post(
        f"/admin/applications/{application.id}/decision",
        data={
            "csrf_token": csrf_from(detail.text),
            "decision": "admit",
            "message": "",
            "version": str(application.version),
        },
        follow_redirects=False,
    )
    assert admitted.status_code in (200, 303), admitted.text
    mail = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "decision_admit")).one()
    assert mail.subject.startswith("Vous êtes admis au ")
    assert "1\u202f500,00\u00a0€" in mail.body_text
    number = mail.attachments[0]["invoice_number"]
    pdf = client.get(f"{location.split('?')[0]}/invoices/{number}.pdf")
    assert pdf.status_code == 200
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Facture" in text
    assert "Total dû" in text
    assert "Comment payer" in text
    assert "Tarif standard" in text and "Standard rate" not in text


def test_the_price_is_explained_in_the_readers_language(
    client: TestClient, session: Session
) -> None:
    from tests.factories import make_edition, make_organisation

    make_edition(session)
    org = make_organisation(session)
    asked = {"organisation_id": org.id, "group_size": "1"}
    spanish = client.get("/editions/diploma-test/price", params={**asked, "lang": "es"})
    assert "Cuota exenta: Malawi es de ingreso bajo" in spanish.text
    assert "Exención por ingreso bajo (100 %)" in spanish.text
    assert "Fee waived" not in spanish.text
    french = client.get("/editions/diploma-test/price", params={**asked, "lang": "fr"})
    assert "Frais exonérés : Malawi est un pays à faible revenu" in french.text
    english = client.get("/editions/diploma-test/price", params={**asked, "lang": "en"})
    assert "Fee waived: Malawi is low income in the World Bank classification" in english.text


def test_the_portal_shows_the_stored_quote_in_the_readers_language(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    client.get("/?lang=es")
    location = post_form(client, form_data(country="FRA")).headers["location"].split("?")[0]
    application = session.exec(select(Application)).one()
    standard = application.quote["lines"][0]
    assert standard["label"] == "Standard rate" and "messages" in standard
    assert "Tarifa estándar" in client.get(location).text
    french = client.get(f"{location}?lang=fr").text
    assert "Tarif standard" in french and "Standard rate" not in french
    assert "Standard rate" in client.get(f"{location}?lang=en").text


def test_a_quote_stored_before_its_messages_were_kept_is_still_shown_in_spanish(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    client.get("/?lang=es")
    location = post_form(client, form_data(country="FRA")).headers["location"].split("?")[0]
    application = session.exec(select(Application)).one()
    # The quote as applications stored it before: English labels and reasons only.
    application.quote = {
        **application.quote,
        "lines": [
            {k: v for k, v in line.items() if k != "messages"}
            for line in application.quote["lines"]
        ],
    }
    session.add(application)
    session.commit()
    page = client.get(location).text
    assert "Tarifa estándar" in page and "Standard rate" not in page
