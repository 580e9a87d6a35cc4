"""The README's configuration table is generated from the settings; keep them in step."""

from __future__ import annotations

from search.settings import settings_table
from tests.conftest import REPO


def test_readme_settings_table_is_current() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = readme.index("<!-- settings-table:end -->")
    assert readme[start:end].strip() == settings_table(), "run `xlsearch settings` into README"
