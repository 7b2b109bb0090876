"""Boot parameters on a host that boots BLS entries (systemd-boot, GRUB with BLS):
every entry's options and /etc/kernel/cmdline get the parameters, the newest entry
is what the next boot passes, our parameters are told apart from the site's,
rollback restores every file byte for byte and takes the parameters out of an
entry installed after the apply; grubenv-style entries are refused."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuning.bls import entry_options, with_options, without_words
from tuning.engine import OK, PENDING, SET, UNSUPPORTED, EngineError, rollback

from .conftest import tree
from .test_boot_fixture import RecordingGrub, boot_rows, engine

ENTRY = """title      Debian GNU/Linux 12 (bookworm)
version    {version}
machine-id 0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e
sort-key   debian
options    root=UUID=0b1c ro quiet
linux      /0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e/{version}/linux
initrd     /0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e/{version}/initrd.img-{version}
"""


def bls_host(root, versions=("6.1.0-27-amd64", "6.1.0-28-amd64"), kernel_cmdline=True):
    entries = root / "boot/loader/entries"
    entries.mkdir(parents=True)
    for v in versions:
        (entries / f"0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e-{v}.conf").write_text(ENTRY.format(version=v))
    if kernel_cmdline:
        (root / "etc/kernel").mkdir(parents=True, exist_ok=True)
        (root / "etc/kernel/cmdline").write_text("root=UUID=0b1c ro quiet\n")
    (root / "proc/cmdline").write_text("initrd=\\initrd.img root=UUID=0b1c ro quiet\n")
    (root / "proc/cpuinfo").write_text("vendor_id\t: GenuineIntel\n")


def test_entry_helpers():
    text = "title x\noptions root=/dev/sda1 ro\noptions quiet\nlinux /vmlinuz\n"
    assert entry_options(text) == "root=/dev/sda1 ro quiet"
    assert with_options(text, "root=/dev/sda1 ro quiet skew_tick=1") == (
        "title x\noptions root=/dev/sda1 ro quiet skew_tick=1\nlinux /vmlinuz\n")
    assert without_words("a b c b", ["b", "z"]) == "a c b"


def test_every_entry_and_kernel_cmdline_then_rollback_byte_for_byte(root):
    bls_host(root)
    before = tree(root)
    runner = RecordingGrub()
    eng = engine(root, runner, "inference-latency", **{"boot.skew_tick": 1, "boot.nohz_full": "2-7"})
    rows = boot_rows(eng)
    assert {r.action for r in rows.values()} == {SET}
    eng.apply()
    assert runner.calls == []  # nothing to regenerate: boot loaders read the entries
    for entry in (root / "boot/loader/entries").iterdir():
        assert entry_options(entry.read_text()) == "root=UUID=0b1c ro quiet nohz_full=2-7 skew_tick=1"
    assert (root / "etc/kernel/cmdline").read_text() == "root=UUID=0b1c ro quiet nohz_full=2-7 skew_tick=1\n"
    assert {r.action for r in boot_rows(eng).values()} == {PENDING}
    (root / "proc/cmdline").write_text("root=UUID=0b1c ro quiet nohz_full=2-7 skew_tick=1\n")
    assert {r.action for r in boot_rows(eng).values()} == {OK}
    rollback(eng)
    (root / "proc/cmdline").write_text(before["proc/cmdline"].decode())  # type: ignore[union-attr]
    assert tree(root) == before


def test_a_kernel_installed_after_the_apply_is_what_boots_next(root):
    bls_host(root)
    before = tree(root)
    eng = engine(root, RecordingGrub(), "inference-latency", **{"boot.skew_tick": 1})
    eng.apply()
    # A kernel update without /etc/kernel/cmdline's help (an installer that copied an old entry):
    new = root / "boot/loader/entries/0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e-6.1.0-100-amd64.conf"
    new.write_text(ENTRY.format(version="6.1.0-100-amd64"))
    row = boot_rows(eng)["boot.skew_tick"]
    assert row.action == SET and row.current == ""  # the newest entry (100 > 28) lacks it: drift
    eng.apply()
    assert "skew_tick=1" in entry_options(new.read_text())
    rollback(eng)
    assert entry_options(new.read_text()) == "root=UUID=0b1c ro quiet"  # taken out of the new entry too
    new.unlink()
    assert tree(root) == before


def test_the_sites_own_value_is_refused_and_ours_can_change(root):
    bls_host(root)
    entry = next((root / "boot/loader/entries").iterdir())
    for e in (root / "boot/loader/entries").iterdir():
        e.write_text(e.read_text().replace("ro quiet", "ro quiet nohz_full=1-3"))
    with pytest.raises(EngineError, match="already sets nohz_full=1-3"):
        engine(root, RecordingGrub(), "inference-latency", **{"boot.nohz_full": "2-7"}).apply()
    assert "nohz_full=1-3" in entry.read_text() and "2-7" not in entry.read_text()
    shutil.rmtree(root / "boot/loader/entries")
    bls_host_entries_only(root)
    engine(root, RecordingGrub(), "inference-latency", **{"boot.nohz_full": "2-7"}).apply()
    # The profile changes: our own earlier value is replaced, not stacked.
    engine(root, RecordingGrub(), "inference-latency", **{"boot.nohz_full": "2-15"}).apply()
    for e in (root / "boot/loader/entries").iterdir():
        assert entry_options(e.read_text()) == "root=UUID=0b1c ro quiet nohz_full=2-15"


def bls_host_entries_only(root):
    entries = root / "boot/loader/entries"
    entries.mkdir(parents=True, exist_ok=True)
    (entries / "x-6.1.0-28-amd64.conf").write_text(ENTRY.format(version="6.1.0-28-amd64"))


def test_without_kernel_cmdline_only_the_entries_change(root):
    bls_host(root, kernel_cmdline=False)
    engine(root, RecordingGrub(), "inference-latency", **{"boot.skew_tick": 1}).apply()
    assert not (root / "etc/kernel/cmdline").exists()  # kernel-install takes /proc/cmdline, booted with it


def test_grubenv_style_entries_are_refused(root):
    bls_host(root)
    for e in (root / "boot/loader/entries").iterdir():
        e.write_text(e.read_text().replace("root=UUID=0b1c ro quiet", "$kernelopts"))
    row = boot_rows(engine(root, RecordingGrub(), "inference-latency", **{"boot.skew_tick": 1}))["boot.skew_tick"]
    assert row.action == UNSUPPORTED and "grubby" in row.note


def test_a_hand_edited_record_is_an_error(root):
    bls_host(root)
    record = root / "var/lib/infernode/tuning/bls-params.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"boot.skew_tick": "skew_tick=1; reboot"}')
    row = boot_rows(engine(root, RecordingGrub(), "inference-latency", **{"boot.skew_tick": 1}))["boot.skew_tick"]
    assert row.action == "error" and "not a record infernode wrote" in row.note


_line = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                max_size=40)
_opts = st.lists(st.from_regex(r"[a-z_]{1,8}(=[a-z0-9,.-]{1,8})?", fullmatch=True), min_size=1, max_size=6)


@given(st.lists(_line, max_size=12), _opts)
def test_any_entry_takes_the_options_it_is_given(lines, words):
    options = " ".join(words)
    text = with_options("".join(line + "\n" for line in lines), options)
    assert entry_options(text) == options
    # Every other line is kept, in order.
    kept = [line for line in text.splitlines() if line.split(None, 1)[:1] != ["options"]]
    assert kept == [line for line in lines if line.split(None, 1)[:1] != ["options"]]
