"""The World Bank income classification shipped with the package (CC BY 4.0, World Bank)."""

import csv
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
INCOME_GROUPS_CSV = DATA_DIR / "world-bank-income-groups.csv"
INCOME_GROUP_CODES = ("L", "LM", "UM", "H")
INCOME_GROUP_NAMES = {
    "L": "low income",
    "LM": "lower-middle income",
    "UM": "upper-middle income",
    "H": "high income",
}


def shipped_income_groups() -> list[dict[str, str | int]]:
    """Rows `{fiscal_year, iso3, name, group}` for every classified economy and year."""
    rows: list[dict[str, str | int]] = []
    with INCOME_GROUPS_CSV.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        years = [f for f in reader.fieldnames or [] if f.startswith("fy")]
        for record in reader:
            for column in years:
                group = (record[column] or "").strip()
                if group:
                    rows.append(
                        {
                            "fiscal_year": int(column[2:]),
                            "iso3": record["iso3"].strip(),
                            "name": record["name"].strip(),
                            "group": group,
                        }
                    )
    return rows


def shipped_economy_names() -> dict[str, str]:
    """World Bank economy names by code, including the codes ISO lacks (XKX, CHI)."""
    with INCOME_GROUPS_CSV.open(newline="", encoding="utf-8") as handle:
        return {r["iso3"].strip(): r["name"].strip() for r in csv.DictReader(handle)}
