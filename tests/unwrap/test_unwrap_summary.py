"""``mailroom unwrap --summary DIR…``: counts over folders of mail, as text and JSON."""

from __future__ import annotations

import json

import pytest
from unwrap_helpers import FIXTURES

from mailroom.cli import main


def test_summary_json_counts_the_notices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unwrap", "--summary", "--json", str(FIXTURES / "notices")]) == 0
    counted = json.loads(capsys.readouterr().out)
    files = len(list((FIXTURES / "notices").glob("*.eml")))
    assert counted["files"] == files
    assert counted["outcome"] == {"emails": files}
    assert counted["report_kind"]["bounce"] == 16
    assert counted["report_kind"]["delayed"] == 2
    assert counted["report_kind"]["auto_reply"] == 6
    assert counted["copy_kind"] == {"direct": files}


def test_summary_text_names_dead_letters_and_warnings(
        capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    (tmp_path / "bom.eml").write_bytes(b"\xef\xbb\xbfFrom: a@b.example\r\nSubject: x\r\n\r\nhi\r\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "plain.eml").write_bytes(b"From: a@b.example\r\n\r\nhi\r\n")
    assert main(["unwrap", "--summary", "--forward-mailbox", "fm", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 files")
    assert "dead letter reason:" in out and "not_forwarded" in out
    assert main(["unwrap", "--summary", str(tmp_path)]) == 0
    assert "byte order mark" in capsys.readouterr().out
