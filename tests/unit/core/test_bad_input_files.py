"""Config, tuning profiles and the manifest under hostile or careless input: a clear
error naming the problem and exit 2, never a traceback, a hang or a blow-up."""

from __future__ import annotations

import os
import threading
import time

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli import main
from agent.config import ConfigError, load_config, parse_config
from agent.units import parse_duration, parse_listen, parse_size
from agent.yamlfile import MAX_NODES, YamlFileError, parse_yaml, read_yaml_file

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
) + "\n"


def _check(tmp_path, content: bytes) -> tuple[int, str]:
    p = tmp_path / "infernode.yaml"
    p.write_bytes(content)
    res = CliRunner().invoke(main, ["config", "check", str(p)])
    return res.exit_code, res.output


@pytest.mark.parametrize("content, said", [
    ("server:\n  listen: caf\u00e9\n".encode("latin-1"), "not UTF-8 text: byte 0xe9 at offset 21"),
    ("\ufeffserver: {}\n".encode("utf-16"), "is UTF-16"),
    (("a: " + "[" * 500 + "]" * 500 + "\n").encode(), "nested more than 64 levels deep"),
    (("events:\n  max_bytes: " + "9" * 4301 + "\n").encode(), "invalid value: Exceeds the limit"),
    (("explain:\n  min_cause: " + "9" * 400 + "s\n").encode(), "explain.min_cause: expected a duration"),
    (b"explain:\n  min_cause: .nan\n", "a duration must be a finite number"),
    (b"explain:\n  min_cause: .inf\n", "a duration must be a finite number"),
    (("explain:\n  min_cause: " + "1" + "0" * 400 + "\n").encode(), "a duration must be a finite number"),
    ("explain:\n  min_cause: \u0967\u0968s\n".encode(), "expected a duration"),  # Devanagari digits
    (("events:\n  max_bytes: " + "9" * 40 + "\n").encode(), "a size cannot exceed"),
    (b"otlp:\n  max_payload: 512MiB\n", "otlp.max_payload: Input should be less than or equal to 268435456"),
    (BILLION_LAUGHS.encode(), f"expands to more than {MAX_NODES} values"),
])
def test_config_check_refuses_with_exit_2_and_one_clear_line(tmp_path, content, said):
    code, out = _check(tmp_path, content)
    assert code == 2, out
    assert said in out, out
    assert "Traceback" not in out and len(out) < 2000


def test_billion_laughs_is_refused_quickly_and_small(tmp_path):
    t0 = time.monotonic()
    code, out = _check(tmp_path, BILLION_LAUGHS.encode())
    assert code == 2 and time.monotonic() - t0 < 2.0 and len(out) < 500


def test_a_long_value_is_quoted_cut_short(tmp_path):
    code, out = _check(tmp_path, ("server:\n  listen: " + "x" * 5000 + "\n").encode())
    assert code == 2 and "..." in out and len(out) < 600


def test_a_fifo_as_config_does_not_hang(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=CliRunner().invoke(main, ["config", "check", str(fifo)])))
    t.start()
    t.join(10)
    assert not t.is_alive(), "config check blocked on a FIFO"
    assert result["r"].exit_code == 2 and "is not a regular file" in result["r"].output


def test_utf8_bom_is_accepted(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"\xef\xbb\xbfserver:\n  listen: 127.0.0.1:9480\n")
    assert load_config(p).server.listen == "127.0.0.1:9480"


@pytest.mark.parametrize("reader", ["manifest", "profile"])
def test_manifest_and_profiles_share_the_bounded_reader(tmp_path, reader):
    p = tmp_path / "f.yaml"
    p.write_bytes(BILLION_LAUGHS.encode())
    if reader == "manifest":
        from agent.bootstrap.manifest import ManifestError
        from agent.bootstrap.manifest import _read_yaml as read
        err = ManifestError
    else:
        from tuning.profiles import ProfileError
        from tuning.profiles import _read_yaml as read
        err = ProfileError
    with pytest.raises(err) as e:
        read(p)
    assert "expands to more than" in str(e.value)


# ---- fuzzing (hypothesis): any input is a value or a ValueError, never anything else

@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                 st.booleans(), st.none()))
def test_fuzz_durations_and_sizes(value):
    for parse in (parse_duration, parse_size):
        try:
            out = parse(value)
        except ValueError:
            continue
        assert out >= 0 and out == out and out != float("inf")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.integers()))
def test_fuzz_listen(value):
    try:
        host, port = parse_listen(value)
    except ValueError:
        return
    assert 0 <= port <= 65535 and isinstance(host, str)


_yaml_chars = st.sampled_from(list("ab:- \n[]{}&*!|>'\"#,.0123456789\t%@`?") + ["\u00e9", "\u0967", "\x00", "\ufeff"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(_yaml_chars, max_size=200))
def test_fuzz_yaml_text(text):
    try:
        parse_yaml(text)
    except YamlFileError as e:
        assert str(e) and "\n" not in str(e)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
                    lambda children: st.one_of(st.lists(children, max_size=4),
                                               st.dictionaries(st.sampled_from(
                                                   ["server", "listen", "otlp", "workers", "name", "command",
                                                    "explain", "min_cause", "events", "max_bytes", "tuning",
                                                    "profile", "x"]), children, max_size=4)),
                    max_leaves=20))
def test_fuzz_config_documents(data):
    try:
        parse_config(data, "fuzz.yaml")
    except ConfigError as e:
        assert e.lines and all(len(line) < 1000 for line in e.lines)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_fuzz_config_file_bytes(tmp_path, raw):
    p = tmp_path / "fuzz.yaml"
    p.write_bytes(raw)
    try:
        read_yaml_file(p)
    except YamlFileError:
        pass


@pytest.mark.parametrize("text, said", [
    ("1: a\nfoo: b\n", "unknown key (expected description, include, tunables)"),
    ("include: " + "p" * 300 + "\n", "not found"),
    # Accepted before: CPU numbers past any kernel's NR_CPUS (and a range of 10^8 CPUs built in memory).
    ("tunables:\n  nic.irq_affinity: '" + "1" + "0" * 30 + "'\n", "expected 'local' or a CPU list"),
    ("tunables:\n  nic.irq_affinity: 0-100000000\n", "expected 'local' or a CPU list"),
])
def test_profiles_refuse_clearly(tmp_path, text, said):
    from tuning.profiles import ProfileError, load_profile

    (tmp_path / "mine.yaml").write_text(text)
    with pytest.raises(ProfileError) as e:
        load_profile("mine", [tmp_path])
    assert said in str(e.value) and len(str(e.value)) < 1200


@pytest.mark.parametrize("text, said", [
    ("tuning:\n  profile: no-such-profile\n", "profile 'no-such-profile' not found"),
    ("tuning:\n  overrides: {colour: 5}\n", "tuning.overrides.colour: unknown tunable"),
])
def test_config_check_resolves_the_tuning_profile(tmp_path, text, said):
    code, out = _check(tmp_path, text.encode())
    assert code == 2 and said in out, out


def test_manifest_refuses_a_nul_byte_in_a_path():
    from agent.bootstrap.manifest import Repository

    with pytest.raises(ValueError, match="NUL byte"):
        Repository.model_validate({"url": "https://example.invalid/", "key": "/etc/k\x00.gpg"})


def test_cpulists_stop_at_the_kernels_highest_cpu():
    from agent.cpulist import CpuListError, parse_cpulist

    assert parse_cpulist("0-3,8190-8191") == {0, 1, 2, 3, 8190, 8191}
    for text in ("8192", "0-100000000", "1" + "0" * 30, "\u0967"):
        with pytest.raises(CpuListError):
            parse_cpulist(text)
