"""The official EN 16931 rules (tests/data/en16931/), run with Saxon over a document."""

from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from saxonche import PySaxonProcessor, PyXsltExecutable

RULES = Path(__file__).parent / "data" / "en16931"
SVRL = "http://purl.oclc.org/dsdl/svrl"


@dataclass
class Rules:
    """Both stylesheets, compiled once (compiling takes a while; running is quick)."""

    processor: PySaxonProcessor
    ubl: PyXsltExecutable
    cii: PyXsltExecutable

    def failures(self, document: bytes, *, syntax: str) -> list[str]:
        """Each failed assertion (fatal or warning) as 'RULE-ID [flag]: its text'."""
        stylesheet = self.ubl if syntax == "ubl" else self.cii
        node = self.processor.parse_xml(xml_text=document.decode("utf-8"))
        report = etree.fromstring(stylesheet.transform_to_string(xdm_node=node).encode("utf-8"))
        return [
            f"{failed.get('id')} [{failed.get('flag')}]: "
            + " ".join("".join(failed.itertext()).split())
            for failed in report.iter(f"{{{SVRL}}}failed-assert")
        ]


def compile_rules() -> Rules:
    """A Saxon processor with both stylesheets compiled."""
    processor = PySaxonProcessor(license=False)
    compiler = processor.new_xslt30_processor()
    return Rules(
        processor=processor,
        ubl=compiler.compile_stylesheet(stylesheet_file=str(RULES / "EN16931-UBL-validation.xslt")),
        cii=compiler.compile_stylesheet(stylesheet_file=str(RULES / "EN16931-CII-validation.xslt")),
    )
