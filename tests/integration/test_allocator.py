"""The allocator setting: freed step buffers reused without page faults, made only by the process's owner."""

import json
import platform
import resource
import subprocess
import sys

import pytest
from conftest import TESTS, build

from recbole_sasrec import run_recbole
from recbole_sasrec.integration import allocator
from recbole_sasrec.tuning import run_hyperopt

PAGES = 64 * 2**20 // resource.getpagesize()  # a 64 MiB tensor


glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")


FAULTS = """
import resource, torch
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(64 * 2**20 // 4)
    t.fill_(1.0)  # touch every page
    del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
"""


def run_python(code: str, tmp_path) -> list:
    done = subprocess.run(
        [sys.executable, "-c", FAULTS + code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(TESTS), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc
def test_freed_step_buffers_are_reused_without_page_faults(tmp_path):
    code = (
        "from recbole_sasrec.integration.allocator import keep_freed_memory\n"
        "default = [faults() for _ in range(6)]\n"
        "accepted = keep_freed_memory()\n"
        "print(json.dumps([default, accepted, [faults() for _ in range(24)]]))\n"
    )
    default, accepted, kept = run_python("import json\n" + code, tmp_path)
    # glibc's default: a fresh mmap for a 64 MiB buffer, every page faulted in again (now and
    # then one fits in what the heap already holds: the median, not every one)
    assert sorted(default)[3] > PAGES * 0.9, default
    assert accepted  # glibc took both thresholds
    # With the setting the first few (up to 9 seen) fault while the heap grows to hold one;
    # then none.
    assert all(f < PAGES // 20 for f in kept[16:]), kept


@glibc
@pytest.mark.parametrize("model", ["SASRec", "LightSANs"])
def test_building_a_model_leaves_the_allocator_alone(tmp_path, model):
    code = (
        "import json\n"
        "from conftest import TINY, write_cycle_dataset, build\n"
        "from pathlib import Path\n"
        "root = write_cycle_dataset(Path('data'))\n"
        f"build({model!r}, 'cycle', dict(TINY, data_path=str(root)))\n"
        "print(json.dumps([faults() for _ in range(6)]))\n"
    )
    faults = run_python(code, tmp_path)
    assert sorted(faults)[3] > PAGES * 0.9, faults  # still glibc's default behaviour


def test_only_the_run_that_owns_the_process_makes_the_setting(tiny, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    build("SASRec", "cycle", tiny)
    space = tmp_path / "sasrec.test"
    space.write_text("n_layers choice [1]\n")
    run_hyperopt(space, dataset="cycle", config_dict=dict(tiny, epochs=1), output_file=None)
    assert calls == []  # library calls: no process-wide setting
    run_recbole("SASRec", "cycle", config_dict=dict(tiny, epochs=1), saved=False)
    assert calls == [1]  # keep_freed_memory: True, our models' default
    cfg = dict(tiny, epochs=1, keep_freed_memory=False)
    run_recbole("SASRec", "cycle", config_dict=cfg, saved=False)
    assert calls == [1]


def test_run_recbole_makes_the_setting_once_the_data_is_loaded(tiny, monkeypatch):
    """Made before, what loading frees would stay with the process, never reused by the steps."""
    from recbole_sasrec.integration import quick_start

    events, prepare = [], quick_start.prepare
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: events.append("setting") or True)
    monkeypatch.setattr(quick_start, "prepare", lambda c: events.append("data") or prepare(c))
    run_recbole("SASRec", "cycle", config_dict=dict(tiny, epochs=1), saved=False)
    assert events == ["data", "setting"]
