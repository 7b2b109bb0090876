"""The kernel command line as the kernel splits it, and infernode's GRUB drop-in:
examples from real command lines, then fuzzed."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuning.cmdline import (
    GIB,
    DropInError,
    hugepages_of_size,
    last_value,
    memparse,
    parse_dropin,
    render_dropin,
    split_cmdline,
)


def test_split_like_the_kernel():
    text = ('BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=UUID=0b1c ro quiet '
            'dyndbg="file drivers/usb/* +p" nosoftlockup isolcpus=managed_irq,domain,2-7 -- single rd.x=1\n')
    params = split_cmdline(text)
    assert params == [("BOOT_IMAGE", "/boot/vmlinuz-6.1.0-28-amd64"), ("root", "UUID=0b1c"), ("ro", None),
                      ("quiet", None), ("dyndbg", "file drivers/usb/* +p"), ("nosoftlockup", None),
                      ("isolcpus", "managed_irq,domain,2-7")]  # after `--`: init's, not the kernel's
    assert last_value(params, "nosoftlockup") == ""
    assert last_value(params, "nohz_full") is None
    # The last occurrence wins; - and _ are one character in names (parameq).
    assert last_value(split_cmdline("skew-tick=0 skew_tick=1"), "skew_tick") == "1"


def test_hugepages_follow_their_size():
    params = split_cmdline("hugepagesz=2M hugepages=512 hugepagesz=1G hugepages=0:8,1:8 default_hugepagesz=1G")
    assert hugepages_of_size(params, GIB) == "0:8,1:8"
    assert hugepages_of_size(params, 2 << 20) == "512"
    assert hugepages_of_size(split_cmdline("hugepages=512"), GIB) is None
    assert hugepages_of_size(split_cmdline("hugepagesz=1024M hugepages=4"), GIB) == "4"
    assert memparse("1G") == GIB and memparse("0x10k") == 16 << 10
    with pytest.raises(ValueError):
        memparse("1Q")


def test_dropin_round_trip_and_refusals():
    entries = {"boot.isolcpus": "isolcpus=domain,managed_irq,2-7", "boot.hugepages_1g": "hugepagesz=1G hugepages=8",
               "boot.nosoftlockup": "nosoftlockup"}
    assert parse_dropin(render_dropin(entries)) == entries
    with pytest.raises(DropInError, match="not a list of plain kernel parameters"):
        render_dropin({"boot.iommu": "pt; reboot"})
    with pytest.raises(DropInError, match="line 6 was not written by infernode"):
        parse_dropin(render_dropin(entries) + 'GRUB_TIMEOUT=0\n')


@given(st.text(max_size=300))
def test_split_never_raises_and_never_makes_more_words_than_whitespace_does(text):
    params = split_cmdline(text)
    # Quotes only join words, and `--` only ends the list.
    assert len(params) <= len(text.split())
    assert all(isinstance(n, str) and (v is None or isinstance(v, str)) for n, v in params)


@given(st.text(max_size=400))
def test_parse_dropin_accepts_or_refuses_cleanly(text):
    try:
        entries = parse_dropin(text)
    except DropInError:
        return
    # What it accepts renders back to a file it reads the same.
    assert parse_dropin(render_dropin(entries)) == entries


_word = st.from_regex(r"[a-z][a-z0-9_]{0,8}(=[A-Za-z0-9,.:/+-]{1,10})?", fullmatch=True)


@given(st.lists(_word, min_size=1, max_size=8))
def test_rendered_params_split_back(words):
    params = split_cmdline(" ".join(words))
    assert [f"{n}={v}" if v is not None else n for n, v in params] == words
