"""Shared fixtures, the ``--board`` option and the one skip policy of tinyhil's tests.

Markers say what a test needs, and this file alone decides what happens when it is missing:

* ``toolchain``: the cross compiler (``arm-none-eabi-gcc``);
* ``qemu``: the cross compiler and ``qemu-system-arm`` (real firmware in real QEMU);
* ``hostcc``: a host C compiler (the firmware kernels built for the host through ctypes);
* ``hardware``: a real board, named by ``TINYHIL_HW_BOARD`` and attached (``tests/test_hardware.py``).

A test whose tools are missing is skipped with one reason, unless ``TINYHIL_REQUIRE_TOOLS=1`` (CI sets it): then
it fails, so a clean machine never passes by skipping the firmware tests.

``pytest --board NAME`` runs the board-generic firmware tests (those using the ``board_name`` fixture) on another
emulated board, or, with the hardware attached, on a real one.
"""

from __future__ import annotations

import os
import shutil

import pytest

from harness.boards import make_board
from tests.fixtures.boards import elf_copy as _elf_copy
from tests.fixtures.boards import fixture_firmware  # noqa: F401  (a fixture: pytest finds it here)
from tests.fixtures.results import scan_results

DEFAULT_BOARD = "qemu-mps2-an386"
_NEEDS = {
    "toolchain": ("arm-none-eabi-gcc",),
    "qemu": ("arm-none-eabi-gcc", "qemu-system-arm"),
    "hostcc": (os.environ.get("CC", "gcc"),),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--board", default=DEFAULT_BOARD,
                     help="board for the board-generic firmware tests (default %(default)s)")


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in (
        ("toolchain", "needs arm-none-eabi-gcc"),
        ("qemu", "runs real firmware in real QEMU (needs arm-none-eabi-gcc and qemu-system-arm)"),
        ("hostcc", "needs a host C compiler"),
        ("hardware", "needs a real board (TINYHIL_HW_BOARD) attached"),
        ("slow", "takes more than a few seconds"),
    ):
        config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    strict = os.environ.get("TINYHIL_REQUIRE_TOOLS") == "1"
    missing = {mark: [t for t in tools if shutil.which(t) is None] for mark, tools in _NEEDS.items()}
    for item in items:
        for mark, absent in missing.items():
            if absent and item.get_closest_marker(mark) is not None:
                reason = f"needs {', '.join(absent)} (bash scripts/setup.sh installs it)"
                if strict:
                    item.add_marker(pytest.mark.usefixtures("_missing_tool_fails"))
                else:
                    item.add_marker(pytest.mark.skip(reason=reason))
                break
        if item.get_closest_marker("hardware") is not None and not os.environ.get("TINYHIL_HW_BOARD"):
            item.add_marker(pytest.mark.skip(reason="needs a real board: set TINYHIL_HW_BOARD=<board> with it "
                                                    "attached"))


@pytest.fixture
def _missing_tool_fails() -> None:
    pytest.fail("a required tool is missing and TINYHIL_REQUIRE_TOOLS=1")


@pytest.fixture(scope="session")
def board_name(request: pytest.FixtureRequest) -> str:
    """The board the board-generic firmware tests run on (``--board``)."""
    return str(request.config.getoption("--board"))


@pytest.fixture
def test_board(board_name: str):
    """A fresh Board for ``--board`` (closed after the test)."""
    board = make_board(board_name)
    yield board
    board.close()


@pytest.fixture
def elf_copy():
    """``elf_copy(build_result, dest)``: a private copy of a shared fixture image (for tests that corrupt it)."""
    return _elf_copy


@pytest.fixture(scope="session", autouse=True)
def results_hold_no_absolute_paths(tmp_path_factory):
    """After the session: no summary.json or result table any test wrote under its temporary folders holds an
    absolute path (results must move between machines and users)."""
    yield
    bad = scan_results(tmp_path_factory.getbasetemp())
    assert bad == [], "absolute paths in result files:\n" + "\n".join(bad[:20])
