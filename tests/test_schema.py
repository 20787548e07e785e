from pathlib import Path

from distillguard.schema import EVENT_SCHEMA, REQUIRED_EVENT_COLUMNS, schema_markdown


def test_docs_schema_is_generated_from_code() -> None:
    doc = Path(__file__).parents[1] / "docs" / "schema.md"
    hint = "run `distillguard schema --out docs/schema.md`"
    assert doc.read_text().strip() == schema_markdown().strip(), hint


def test_required_columns_are_not_nullable() -> None:
    for f in EVENT_SCHEMA:
        assert f.nullable == (f.name not in REQUIRED_EVENT_COLUMNS)
