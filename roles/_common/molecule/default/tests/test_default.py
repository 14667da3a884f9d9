"""testinfra checks of _common's venv entry point: the venv of the pins from the
one-wheel wheelhouse, its marker, the wheels cleaned up, and the tampered tar refused."""

from __future__ import annotations

import hashlib

VENV = "/opt/llmhost/common-test/venv"
PINS = "llmhost-probe==1.0"


def test_venv_imports_the_pinned_wheel(host) -> None:
    out = host.check_output(
        f"{VENV}/bin/python -c 'import llmhost_probe; print(llmhost_probe.VALUE)'"
    )
    assert out == "pinned"
    freeze = host.check_output(f"{VENV}/bin/python -m pip list --format=freeze").splitlines()
    assert PINS in freeze


def test_marker_holds_the_sha256_of_the_pins(host) -> None:
    marker = host.file(f"{VENV}/.llmhost-complete")
    assert marker.content_string == hashlib.sha256(PINS.encode()).hexdigest() + "\n"
    assert marker.mode == 0o644
    assert host.file(f"{VENV}/llmhost-requirements.txt").content_string == PINS + "\n"


def test_unpacked_wheels_installer_and_its_cache_are_removed(host) -> None:
    for left in ("wheelhouse", "wheelhouse.tar", "installer", "installer-cache"):
        assert not host.file(f"/opt/llmhost/common-test/{left}").exists, left


def test_the_installer_stays_out_of_the_venv(host) -> None:
    """uv built the venv from the wheelhouse (its record says so) but is not in it."""
    assert not host.file(f"{VENV}/bin/uv").exists
    installer = host.check_output(
        f"cat {VENV}/lib/python3*/site-packages/llmhost_probe-1.0.dist-info/INSTALLER"
    )
    assert installer == "uv"


def test_tampered_wheel_is_refused_before_anything_is_installed(host) -> None:
    refusal = host.file("/root/common_venv_refusal.txt").content_string
    assert "llmhost_probe-1.0-py3-none-any.whl: FAILED" in refusal, refusal
    assert "Nothing was installed. Fix: remove" in refusal, refusal
    assert not host.file("/opt/llmhost/common-test/refused").exists
    assert host.file("/opt/llmhost/common-refused/wheelhouse.tar").exists  # left for a look
