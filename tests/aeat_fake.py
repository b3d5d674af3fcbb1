"""A local stand-in for the AEAT's VERI*FACTU web service (SOAP over HTTP on 127.0.0.1).

It checks each message against the AEAT's schema (a fault, code 4102, as the AEAT answers a
message that breaks it), keeps the records it accepted, answers a record it has already with
error 3000 (duplicate), and can be told to reject a record, to be away (an outage), or to
lose its answer after registering a message.
"""

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from app.services.billing import verifactu

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_ANSWER = (
    "https://www2.agenciatributaria.gob.es/static_files/common/internet/dep/aplicaciones/"
    "es/aeat/tike/cont/ws/RespuestaSuministro.xsd"
)
NS_SF = verifactu.NS_SF


@dataclass
class FakeAeat:
    """What arrived and what was registered; tests set how the next messages fare."""

    url: str = ""
    wait_seconds: int = 60
    # Invoice number -> (code, text) for records to refuse.
    refuse: dict[str, tuple[str, str]] = field(default_factory=dict)
    away: bool = False
    lose_next_answer: bool = False
    # A fault to answer every message with (e.g. a certificate the AEAT refuses).
    fault: str = ""
    messages: list[list[str]] = field(default_factory=list)
    registered: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    # The common names of the client certificates that messages came with (TLS only).
    clients: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: bytes) -> tuple[int, bytes]:
        """The AEAT's answer to one SOAP message."""
        envelope = etree.fromstring(body)
        document = envelope.find(
            f"{{{NS_SOAP}}}Body/{{{verifactu.NS_LR}}}RegFactuSistemaFacturacion"
        )
        if self.fault:
            return 500, _fault(self.fault)
        schema = verifactu.schema()
        if document is None or not schema.validate(document):
            text = f"Codigo[4102].El XML no cumple el esquema. {schema.error_log.last_error}"
            with self.lock:
                self.faults.append(text)
            return 500, _fault(text)
        with self.lock:
            lines, state = [], "Correcto"
            self.messages.append([])
            for record in document.findall(f"{{{verifactu.NS_LR}}}RegistroFactura/*"):
                key, line = self._register(record)
                self.messages[-1].append(key[2])
                lines.append(line)
            states = {line[1] for line in lines}
            if states == {"Incorrecto"}:
                state = "Incorrecto"
            elif "Incorrecto" in states:
                state = "ParcialmenteCorrecto"
            return 200, _answer(document, lines, state=state, wait=self.wait_seconds)

    def _register(
        self, record: etree._Element
    ) -> tuple[tuple[str, str, str, str], tuple[etree._Element, str, str, str, str]]:
        alta = record.tag.endswith("RegistroAlta")
        suffix = "" if alta else "Anulada"
        ident = record.find(f"{{{NS_SF}}}IDFactura")
        assert ident is not None
        nif = ident.findtext(f"{{{NS_SF}}}IDEmisorFactura{suffix}") or ""
        number = ident.findtext(f"{{{NS_SF}}}NumSerieFactura{suffix}") or ""
        day = ident.findtext(f"{{{NS_SF}}}FechaExpedicionFactura{suffix}") or ""
        operation = "Alta" if alta else "Anulacion"
        key = (nif, day, number, operation)
        if key in self.registered:
            return key, (
                record,
                "Incorrecto",
                "3000",
                "Registro de facturación duplicado.",
                operation,
            )
        if number in self.refuse:
            code, text = self.refuse[number]
            return key, (record, "Incorrecto", code, text, operation)
        self.registered[key] = record.findtext(f"{{{NS_SF}}}Huella") or ""
        return key, (record, "Correcto", "", "", operation)


def _answer_el(
    parent: etree._Element, name: str, text: str | None = None, ns: str = NS_ANSWER
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        element.text = text
    return element


def _answer(
    document: etree._Element,
    lines: list[tuple[etree._Element, str, str, str, str]],
    *,
    state: str,
    wait: int,
) -> bytes:
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"env": NS_SOAP})
    body = etree.SubElement(envelope, f"{{{NS_SOAP}}}Body")
    answer = _answer_el(body, "RespuestaRegFactuSistemaFacturacion")
    if state != "Incorrecto":
        _answer_el(answer, "CSV", "A-FAKE0000000001")
    header = _answer_el(answer, "Cabecera")
    obliged = _answer_el(header, "ObligadoEmision", ns=NS_SF)
    for name in ("NombreRazon", "NIF"):
        _answer_el(obliged, name, document.findtext(f".//{{{NS_SF}}}{name}"), ns=NS_SF)
    _answer_el(answer, "TiempoEsperaEnvio", str(wait))
    _answer_el(answer, "EstadoEnvio", state)
    for record, status, code, text, operation in lines:
        line = _answer_el(answer, "RespuestaLinea")
        ident = _answer_el(line, "IDFactura")
        suffix = "" if operation == "Alta" else "Anulada"
        for name in ("IDEmisorFactura", "NumSerieFactura", "FechaExpedicionFactura"):
            value = record.findtext(f"{{{NS_SF}}}IDFactura/{{{NS_SF}}}{name}{suffix}")
            _answer_el(ident, name, value, ns=NS_SF)
        _answer_el(_answer_el(line, "Operacion"), "TipoOperacion", operation, ns=NS_SF)
        _answer_el(line, "EstadoRegistro", status)
        if code:
            _answer_el(line, "CodigoErrorRegistro", code)
            _answer_el(line, "DescripcionErrorRegistro", text)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def _fault(text: str) -> bytes:
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"env": NS_SOAP})
    fault = etree.SubElement(
        etree.SubElement(envelope, f"{{{NS_SOAP}}}Body"), f"{{{NS_SOAP}}}Fault"
    )
    etree.SubElement(fault, "faultcode").text = "env:Client"
    etree.SubElement(fault, "faultstring").text = text
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


@dataclass(frozen=True)
class TlsFiles:
    """A test CA, the fake's server certificate, and the office's client certificate (PEM)."""

    ca: Path
    server: Path
    client: Path


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls_files(folder: Path) -> TlsFiles:
    """Certificates for a TLS fake that asks for the office's client certificate."""

    def pem(key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> bytes:
        return certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Fake AEAT test CA", ca_key, None)
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    authority = (ca.subject, ca_key)
    files = TlsFiles(
        ca=folder / "ca.pem", server=folder / "server.pem", client=folder / "office.pem"
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server.write_bytes(
        pem(server_key, _certificate("127.0.0.1", server_key, authority, server=True))
    )
    files.client.write_bytes(
        pem(client_key, _certificate("G08012346 Metropolis", client_key, authority))
    )
    return files


@contextmanager
def running_fake_aeat(tls: TlsFiles | None = None) -> Iterator[FakeAeat]:
    """The fake service on a free port of 127.0.0.1 for the length of the block; with `tls`,
    over TLS asking for a client certificate signed by the test CA, as the AEAT does."""
    fake = FakeAeat()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if tls is not None:
                peer = self.connection.getpeercert() or {}  # type: ignore[attr-defined]
                fake.clients.append(
                    dict(part[0] for part in peer.get("subject", ())).get("commonName", "")
                )
            if fake.away:
                self.send_response(503)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(b"<html><body>Servicio no disponible</body></html>")
                return
            status, answer = fake.answer(body)
            if fake.lose_next_answer:
                # Registered, but the answer never reaches the sender.
                fake.lose_next_answer = False
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(str(tls.server))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    fake.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
