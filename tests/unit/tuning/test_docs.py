"""docs/tuning.md is generated and current; its tuned column matches tuned's files."""

from pathlib import Path

import pytest

from tuning.comparison import EXPLAINED, MAPPING, TUNED_PROFILES, TUNED_VALUES, parse_tuned_conf, split_bootloader
from tuning.docs import TUNING_DOC, render_tuning_doc
from tuning.registry import tunable_classes

# The installed package's, else the one `make setup` unpacked (scripts/setup-os.sh).
# tuned's [variables] are values other options use, not settings of their own.
VARIABLES_SECTION = "variables."
TUNED_DIR = next((d for d in (Path("/usr/lib/tuned"), Path("/var/cache/infernode-tests/tuned/usr/lib/tuned"))
                  if (d / "latency-performance" / "tuned.conf").exists()), Path("/usr/lib/tuned"))


def test_tuning_doc_is_current(repo):
    assert (repo / TUNING_DOC).read_text() == render_tuning_doc(), "run `infernode docs --write`"


def test_every_tunable_is_documented_and_compared():
    doc = render_tuning_doc()
    for cls in tunable_classes():
        assert cls.__doc__ and cls.__doc__.strip(), cls.name
        assert f"### `{cls.name}`" in doc
        assert cls.name in MAPPING and MAPPING[cls.name][1], f"{cls.name}: say why it differs from tuned"


def test_parse_tuned_conf():
    includes, values = parse_tuned_conf(
        "[main]\nsummary=x\ninclude=latency-performance\n[sysctl]\nvm.dirty_ratio = 40\n[cpu]\nforce_latency=cstate.id_no_zero:1|3\n")
    assert includes == ["latency-performance"]
    assert values == {"sysctl.vm.dirty_ratio": "40", "cpu.force_latency": "cstate.id_no_zero:1|3"}


def test_boot_parameters_count_one_by_one():
    got = split_bootloader({"bootloader.cmdline_cpu_part": "+nohz=on${cmd_isolcpus} nohz_full=${isolated_cores} "
                                                            "intel_pstate=disable nosoftlockup", "cpu.governor": "x"})
    assert got == {"bootloader.cmdline:nohz": "on", "bootloader.cmdline:isolcpus": "${no_balance_cores}",
                   "bootloader.cmdline:nohz_full": "${isolated_cores}", "bootloader.cmdline:intel_pstate": "disable",
                   "bootloader.cmdline:nosoftlockup": "on", "cpu.governor": "x"}


def effective(profile: str) -> dict[str, str]:
    includes, values = parse_tuned_conf((TUNED_DIR / profile / "tuned.conf").read_text())
    merged: dict[str, str] = {}
    for inc in includes:
        merged.update(effective(inc))
    merged.update(split_bootloader(values))
    return merged


@pytest.mark.parametrize("profile", TUNED_PROFILES)
def test_recorded_tuned_values_match_installed_tuned(profile):
    if not (TUNED_DIR / profile / "tuned.conf").exists():
        pytest.skip("tuned's profiles are not here (make setup unpacks them as root)")
    installed = effective(profile)
    mapped = {tuned_key for tuned_key, _ in MAPPING.values() if tuned_key}
    assert {k: v for k, v in installed.items() if k in mapped} == TUNED_VALUES[profile]


def test_every_option_of_the_five_tuned_profiles_is_covered_or_explained():
    if not (TUNED_DIR / "cpu-partitioning" / "tuned.conf").exists():
        pytest.skip("tuned's profiles are not here (make setup unpacks them as root)")
    mapped = {tuned_key for tuned_key, _ in MAPPING.values() if tuned_key}
    options = {k for p in TUNED_PROFILES for k in effective(p) if not k.startswith(VARIABLES_SECTION)}
    assert options - mapped - set(EXPLAINED) == set(), "cover these in a tunable or explain them"
    assert set(EXPLAINED) & mapped == set(), "explained and covered at once"
    assert set(EXPLAINED) <= options, "explains an option tuned's files do not have"
