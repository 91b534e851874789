"""The append-only journal of the monitor's window events (`flows.journal`), on real files."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import flows.journal
from flows.journal import REWRITE_EVERY, Journal


def test_module_doctest() -> None:
    assert doctest.testmod(flows.journal).failed == 0


def test_what_was_appended_after_the_resumed_mark_is_gone_for_good(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "m/1")
    mark = journal.append(["a"])
    journal.append(["b"])  # its snapshot was never stored
    resumed = Journal(tmp_path, "m/1")
    assert resumed.resume(mark) == ["a"]
    later = resumed.append(["c"])
    assert Journal(tmp_path, "m/1").resume(later) == ["a", "c"]


def test_a_damaged_journal_is_an_error_not_a_shorter_window(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "m/1")
    journal.append(["a"])
    mark = journal.append(["b"])
    [path] = tmp_path.glob("*.journal")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        Journal(tmp_path, "m/1").resume(mark)
    path.write_bytes(bytes(data[:-3]))
    with pytest.raises(ValueError, match="the snapshot marks"):
        Journal(tmp_path, "m/1").resume(mark)


def test_saves_rewrite_a_grown_journal_and_keep_the_generation_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flows.journal, "MIN_REWRITE", 4)
    journal = Journal(tmp_path, "m/1")
    live = ["x", "y"]
    marks = [journal.save([], len(live), lambda: live)]  # the first save writes everything
    assert journal.resume(marks[0]) == live
    for i in range(2 * REWRITE_EVERY):  # the journal is past 2 x live at each save
        marks.append(journal.save([f"c{i}"], len(live), lambda: live))
    generations = [g for g, _ in marks]
    assert generations == sorted(generations) and generations[-1] == 2
    assert generations.count(1) == REWRITE_EVERY  # never sooner than every REWRITE_EVERY saves
    assert sorted(p.name.split(".")[-2] for p in tmp_path.glob("*.journal")) == ["1", "2"]
    assert Journal(tmp_path, "m/1").resume(marks[-1]) == live
    before = max(m for m in marks if m[0] == 1)
    appended = [f"c{i}" for i in range(REWRITE_EVERY, 2 * REWRITE_EVERY - 1)]
    assert Journal(tmp_path, "m/1").resume(before) == [*live, *appended]
    assert [p.name.split(".")[-2] for p in tmp_path.glob("*.journal")] == ["1"]


def test_keys_have_journals_of_their_own(tmp_path: Path) -> None:
    a, b = Journal(tmp_path, "m/1"), Journal(tmp_path, "m/1 ")
    mark = a.append(["a"])
    b.append(["b"])
    assert Journal(tmp_path, "m/1").resume(mark) == ["a"]
