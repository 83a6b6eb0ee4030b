"""Bad input is refused before any work starts, in one line naming the fix."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.cli import REPO, tinyhil


@pytest.mark.parametrize(
    "args,says",
    [
        (["method=bitops", "method.bits=[3]"], "method.bits must be a non-empty subset"),
        (["method=bayesbits", "method.regulariser=energy"], "bayesbits regulariser must be one of"),
        (["method=bayesbits", "method.epochs=0"], "bayesbits needs lam >= 0, epochs >= 1"),
        (["experiment=int8", "method=uniform4", "method.a_bits=3"], "method.a_bits must be 2, 4 or 8"),
        (["experiment=smoke", "method=bitops"], "experiment=smoke does not use method"),
        (["experiment=smoke", "model=tiny-cnn"], "experiment=smoke does not use model"),
        (["experiment=quantmcu", "method.bits=[8,3]"], "bits must be a subset"),
        (["method=file"], "method 'file' needs method.path"),
        (["experiment=smoke", "hydra.run.dir=/proc/no-such-folder"], "cannot write the run folder"),
    ],
)
def test_refused_before_any_work_in_one_line(tmp_path, args, says):
    t0 = time.monotonic()
    p = tinyhil("run", *args, f"workdir={tmp_path}/w", cwd=REPO)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and says in lines[0], p.stderr[-2000:]
    assert time.monotonic() - t0 < 30  # no profiling, training or building happened
    assert not (tmp_path / "w").exists()


def test_a_file_where_the_work_folder_should_be_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    p = tinyhil("run", "experiment=smoke", f"workdir={tmp_path}/afile/w", f"hydra.run.dir={tmp_path}/run", cwd=REPO)
    assert p.returncode == 2 and "is a file, not a folder" in p.stderr and "Traceback" not in p.stderr
