"""docs/verification.md lists every check of the shipped thresholds, as the thresholds file has it."""

from pathlib import Path

from opendrp.verify.thresholds import load_thresholds, markdown_table

DOC = Path(__file__).parents[2] / "docs" / "verification.md"


def test_checks_table_matches_thresholds_file() -> None:
    text = DOC.read_text()
    start = text.index("<!-- checks-table -->") + len("<!-- checks-table -->")
    end = text.index("<!-- /checks-table -->")
    assert text[start:end].strip() == markdown_table(load_thresholds()).strip(), (
        "regenerate the table: python -m opendrp.verify.thresholds"
    )


def test_every_case_has_a_section_and_title() -> None:
    th = load_thresholds()
    for case_id in (
        "DRP-00-00",
        "DRP-00-05",
        "DRP-00-10",
        "DRP-00-15",
        "DRP-00-25",
        "DRP-00-30",
        "DRP-00-35",
    ):
        assert th.title(case_id) != case_id and th.section(case_id).startswith("000 §"), case_id
