"""Host side of the nvidia_driver role: the OpenPGP reader behind apt_signing_key, the
readers behind nvidia_host_facts (sysfs built from the real H100 capture, kernel log
lines, EFI variables), and both modules run for real through ansible-playbook."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.llmhost.core.plugins.module_utils import nvidia_host, openpgp

ROOT = Path(__file__).resolve().parents[2]
KEYS = ROOT / "tests" / "data" / "apt-keys"
SMI = ROOT / "tests" / "data" / "nvidia-smi" / "h100"
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# Fingerprints as gpg --with-colons prints them for the fixtures (made with gpg 2.2).
RSA = "128715D7A36D45A45C0F327BD2EADA5AB026DCBD"
RSA_SUBKEY = "2ED35F60CB804D4EFF4DB21B73B219CF0DBBA529"
ED25519 = "86ECB608FD41D74EDC94054D449E46BC4DA99B9B"


# --- OpenPGP ------------------------------------------------------------------------------


def test_fingerprints_of_armored_and_binary_keys() -> None:
    rsa = openpgp.read_keys((KEYS / "test-rsa.asc").read_bytes())
    assert [k["fingerprint"] for k in rsa] == [RSA]
    assert rsa[0]["subkeys"] == [RSA_SUBKEY]
    assert rsa[0]["user_ids"] == [
        "llmhost test repository (RSA, tests only) <repo-rsa@llmhost.invalid>"
    ]
    ed = openpgp.read_keys((KEYS / "test-ed25519.gpg").read_bytes())
    assert [k["fingerprint"] for k in ed] == [ED25519]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", ed[0]["created"])


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")
def test_fingerprints_agree_with_gpg(tmp_path: Path) -> None:
    for name in ("test-rsa.asc", "test-ed25519.gpg", "test-two-keys.asc"):
        out = subprocess.run(
            ["gpg", "--homedir", str(tmp_path), "--with-colons", "--show-keys", str(KEYS / name)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        theirs = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]
        ours = []
        for key in openpgp.read_keys((KEYS / name).read_bytes()):
            ours += [key["fingerprint"], *key["subkeys"]]
        assert ours == theirs, name


def test_single_pinned_key_accepted_others_refused() -> None:
    raw = (KEYS / "test-rsa.asc").read_bytes()
    spaced = " ".join(RSA[i : i + 4] for i in range(0, 40, 4))
    assert openpgp.check_single_key(raw, spaced.lower())["fingerprint"] == RSA
    with pytest.raises(ValueError, match=f"fingerprint is {RSA}, but {ED25519} is pinned"):
        openpgp.check_single_key(raw, ED25519)
    with pytest.raises(ValueError, match="holds 2 primary keys"):
        openpgp.check_single_key((KEYS / "test-two-keys.asc").read_bytes(), RSA)


@pytest.mark.parametrize("bad", ["3BF863CC", "A4B469963BF863CC", "not hex at all", ""])
def test_short_key_ids_are_not_a_pin(bad: str) -> None:
    with pytest.raises(ValueError, match="40 hex digits"):
        openpgp.normalize_fingerprint(bad)


def test_damaged_armor_is_refused() -> None:
    text = (KEYS / "test-rsa.asc").read_text()
    lines = text.splitlines()
    body = next(i for i, line in enumerate(lines) if len(line) == 64)
    flipped = lines[body][:10] + ("A" if lines[body][10] != "A" else "B") + lines[body][11:]
    damaged = "\n".join([*lines[:body], flipped, *lines[body + 1 :]])
    with pytest.raises(ValueError, match="CRC-24"):
        openpgp.dearmor(damaged)
    with pytest.raises(ValueError, match="not an ASCII-armored"):
        openpgp.dearmor("hello")
    with pytest.raises(ValueError, match=r"truncated|runs past"):
        openpgp.read_keys((KEYS / "test-ed25519.gpg").read_bytes()[:40])


def test_binary_keyring_is_the_dearmored_key() -> None:
    binary = openpgp.binary_keyring((KEYS / "test-rsa.asc").read_bytes())
    assert binary[0] & 0x80 and not binary.startswith(b"-----")
    assert openpgp.read_keys(binary)[0]["fingerprint"] == RSA
    ed = (KEYS / "test-ed25519.gpg").read_bytes()
    assert openpgp.binary_keyring(ed) == ed


# --- sysfs, kernel log, EFI ------------------------------------------------------------------


def _h100_pci_from_capture() -> tuple[str, str, str]:
    """(address, device, class) of the acceptance host's GPU, read from nvidia-smi -q."""
    text = (SMI / "nvidia-smi-q.txt").read_text()

    def field(name: str) -> str:
        return re.search(rf"^\s+{name}\s+: (\S+)", text, re.M).group(1)

    bus = field("Bus Id")  # 00000000:00:06.0 -> 0000:00:06.0
    device = "0x" + field("Device Id")[2:6].lower()  # 0x233010DE -> 0x2330
    base, sub = int(field("Base Classcode"), 16), int(field("Sub Classcode"), 16)
    return bus[4:].lower(), device, f"0x{base:02x}{sub:02x}00"


def fake_sysfs(root: Path, devices: dict[str, tuple[str, str, str]], modules: list[str]) -> Path:
    for address, (vendor, device, pci_class) in devices.items():
        folder = root / "bus" / "pci" / "devices" / address
        folder.mkdir(parents=True)
        for name, value in (("vendor", vendor), ("device", device), ("class", pci_class)):
            (folder / name).write_text(value + "\n")
    for name in modules:
        (root / "module" / name).mkdir(parents=True)
    return root


@pytest.fixture
def hgx_sysfs(tmp_path: Path) -> Path:
    """The H100 of the captures, one NVSwitch, an old Pascal GPU and a virtio NIC."""
    address, device, pci_class = _h100_pci_from_capture()
    return fake_sysfs(
        tmp_path / "sys",
        {
            address: ("0x10de", device, pci_class),
            "0000:05:00.0": ("0x10de", "0x22a3", "0x068000"),
            "0000:3b:00.0": ("0x10de", "0x15f8", "0x030200"),
            "0000:00:02.0": ("0x1af4", "0x1000", "0x020000"),
        },
        ["nvidia", "nvidia_uvm"],
    )


def test_h100_from_the_capture_supports_open_modules(hgx_sysfs: Path) -> None:
    assert _h100_pci_from_capture() == ("0000:00:06.0", "0x2330", "0x030200")
    found = nvidia_host.pci_devices(hgx_sysfs / "bus" / "pci" / "devices")
    by_address = {d["address"]: d for d in found}
    assert set(by_address) == {"0000:00:06.0", "0000:05:00.0", "0000:3b:00.0"}
    assert by_address["0000:00:06.0"]["kind"] == "gpu"
    assert by_address["0000:00:06.0"]["open_modules_supported"] is True
    assert by_address["0000:05:00.0"]["kind"] == "nvswitch"
    assert by_address["0000:3b:00.0"]["open_modules_supported"] is False


@pytest.mark.parametrize(
    ("device", "supported"),
    [(0x1DB6, False), (0x1E02, True), (0x1EB8, True), (0x20B0, True), (0x2901, True)],
)
def test_open_module_rule(device: int, supported: bool) -> None:
    assert nvidia_host.open_modules_supported(device) is supported


def test_no_sysfs_is_no_gpu(tmp_path: Path) -> None:
    assert nvidia_host.pci_devices(tmp_path / "absent") == []


def test_driver_flavor() -> None:
    assert nvidia_host.driver_flavor((SMI / "proc-driver-version.txt").read_text()) == "open"
    proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Release Build"
    assert nvidia_host.driver_flavor(proprietary) == "proprietary"
    assert nvidia_host.driver_flavor("") is None


def test_xid_lines_from_the_kernel_log() -> None:
    log = """\
[    3.104] nvidia: loading out-of-tree module taints kernel.
[ 1041.2] NVRM: Xid (PCI:0000:00:06): 79, pid=2841, name=python3, GPU has fallen off the bus.
Nov 22 10:00:01 gpu kernel: NVRM: Xid (PCI:0000:3b:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0.
"""  # noqa: E501 - real kernel log lines are long
    events = nvidia_host.xid_events(log)
    assert [(e["pci"], e["xid"]) for e in events] == [("0000:00:06", 79), ("0000:3b:00", 48)]
    assert events[0]["detail"].endswith("GPU has fallen off the bus.")
    assert nvidia_host.xid_events("nothing to see") == []


def test_secure_boot_variable(tmp_path: Path) -> None:
    (tmp_path / nvidia_host.SECURE_BOOT_VAR).write_bytes(b"\x06\x00\x00\x00\x01")
    assert nvidia_host.secure_boot(tmp_path) is True
    (tmp_path / nvidia_host.SECURE_BOOT_VAR).write_bytes(b"\x06\x00\x00\x00\x00")
    assert nvidia_host.secure_boot(tmp_path) is False
    assert nvidia_host.secure_boot(tmp_path / "bios") is None


def test_fabric_manager_version_line() -> None:
    assert nvidia_host.first_version("Fabric Manager version is : 580.159.04") == "580.159.04"


# --- the modules, run for real --------------------------------------------------------------


def run_tasks(tmp_path: Path, tasks: list[dict[str, Any]], check: bool = False) -> dict[str, Any]:
    """Run tasks on localhost; {task name: result} from the JSON callback."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_FACT_CACHING="memory",
    )
    cmd = [str(PLAYBOOK), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml")]
    done = subprocess.run(
        [*cmd, "--check"] if check else cmd,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    results = json.loads(done.stdout)["plays"][0]["tasks"]
    return {t["task"]["name"]: t["hosts"]["localhost"] for t in results}


def key_task(name: str, dest: Path, **args: Any) -> dict[str, Any]:
    return {
        "name": name,
        "llmhost.core.apt_signing_key": {"dest": str(dest), **args},
        "ignore_errors": True,
    }


@pytest.mark.slow
def test_apt_signing_key_module(tmp_path: Path) -> None:
    dest = tmp_path / "keyrings" / "repo.gpg"
    url = (KEYS / "test-rsa.asc").as_uri()
    content = (KEYS / "test-rsa.asc").read_text()
    out = run_tasks(
        tmp_path,
        [
            key_task("wrong pin", tmp_path / "wrong.gpg", url=url, fingerprint=ED25519),
            key_task(
                "two keys",
                tmp_path / "two.gpg",
                content=(KEYS / "test-two-keys.asc").read_text(),
                fingerprint=RSA,
            ),
            key_task("first", dest, url=url, fingerprint=RSA),
            key_task(
                "again, offline", dest, url="https://unreachable.invalid/k.pub", fingerprint=RSA
            ),
            key_task("as content", dest, content=content, fingerprint=RSA),
        ],
    )
    assert out["wrong pin"]["failed"]
    assert f"the key's fingerprint is {RSA}, but {ED25519} is pinned" in out["wrong pin"]["msg"]
    assert not (tmp_path / "wrong.gpg").exists()
    assert out["two keys"]["failed"] and "holds 2 primary keys" in out["two keys"]["msg"]
    assert not (tmp_path / "two.gpg").exists()
    assert out["first"]["changed"] and out["first"]["source"] == "url"
    assert out["first"]["fingerprint"] == RSA
    assert dest.read_bytes() == openpgp.dearmor(content)
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    assert (out["again, offline"]["changed"], out["again, offline"]["source"]) == (
        False,
        "existing",
    )
    assert out["as content"]["changed"] is False


@pytest.mark.slow
def test_apt_signing_key_check_mode_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "repo.gpg"
    out = run_tasks(
        tmp_path,
        [key_task("check", dest, content=(KEYS / "test-rsa.asc").read_text(), fingerprint=RSA)],
        check=True,
    )
    assert out["check"]["changed"] is True
    assert not dest.exists()


@pytest.mark.slow
def test_nvidia_host_facts_module(tmp_path: Path, hgx_sysfs: Path) -> None:
    proc = tmp_path / "proc" / "driver" / "nvidia"
    proc.mkdir(parents=True)
    shutil.copy(SMI / "proc-driver-version.txt", proc / "version")
    efi = hgx_sysfs / "firmware" / "efi" / "efivars"
    efi.mkdir(parents=True)
    (efi / nvidia_host.SECURE_BOOT_VAR).write_bytes(base64.b64decode("BgAAAAE="))
    out = run_tasks(
        tmp_path,
        [
            {
                "name": "facts",
                "llmhost.core.nvidia_host_facts": {
                    "sysfs_root": str(hgx_sysfs),
                    "proc_root": str(tmp_path / "proc"),
                    "packages": ["bash", "nvidia-utils-580"],
                },
            }
        ],
        check=True,
    )
    facts = out["facts"]
    assert facts["changed"] is False
    assert (facts["pci"]["gpu_count"], facts["pci"]["nvswitch_count"]) == (2, 1)
    assert facts["pci"]["open_modules_supported"] is False  # the Pascal GPU
    assert facts["modules"] == {
        "nvidia": True,
        "nvidia_uvm": True,
        "nvidia_modeset": False,
        "nvidia_drm": False,
        "nouveau": False,
    }
    assert facts["loaded_driver"] == {"version": "580.159.04", "flavor": "open"}
    assert facts["secure_boot"] is True
    assert facts["packages"]["nvidia-utils-580"] is None
    assert facts["packages"]["bash"]  # installed on every Debian/Ubuntu control node
    assert facts["kernel_log"]["xid_events"] == [] or facts["kernel_log"]["checked"]
