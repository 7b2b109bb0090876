"""The Ansible role and playbooks pass ansible-lint's production profile and
ansible-playbook's syntax check (real ansible-core, installed by setup-os.sh)."""

import shutil
import subprocess

import pytest

PLAYBOOKS = ("site.yml", "rollout.yml", "rollback.yml")


@pytest.fixture
def ansible_dir(repo):
    if not shutil.which("ansible-playbook"):
        pytest.fail("ansible-playbook missing: scripts/setup-os.sh installs ansible-core")
    return repo / "ansible"


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_syntax_check(ansible_dir, playbook):
    r = subprocess.run(["ansible-playbook", "--syntax-check", playbook], cwd=ansible_dir,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ansible_lint_production_profile(ansible_dir):
    r = subprocess.run(["ansible-lint", "--offline", "-p", "--profile", "production"], cwd=ansible_dir,
                       capture_output=True, text=True, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                                                             "HOME": str(ansible_dir.parent / ".pytest_cache")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Passed with production profile" in r.stdout + r.stderr


def test_role_argument_specs_cover_defaults(ansible_dir):
    import yaml

    role = ansible_dir / "roles" / "infernode"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(specs), f"undocumented: {set(defaults) - set(specs)}; stale: {set(specs) - set(defaults)}"
