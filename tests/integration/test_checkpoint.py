"""Checkpoints: round trip and resume, fresh processes, data fingerprints, and files that cannot run code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import build, log_lines, train_converted

from recbole_sasrec import ConfigError, Recommender, load_data_and_model
from recbole_sasrec.__main__ import main
from recbole_sasrec.data.convert import convert
from recbole_sasrec.integration.trainer import get_trainer


def test_checkpoint_round_trip_and_resume(tiny):
    config, model, train, valid, test = build("SASRec", "cycle", dict(tiny, epochs=1))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train, valid, saved=True, show_progress=False)  # one epoch: saved == final
    batch = next(iter(test))[0]
    model.eval()
    with torch.no_grad():
        before = model.full_sort_predict(batch)

    _, loaded, *_ = load_data_and_model(trainer.saved_model_file)
    assert type(loaded) is type(model)
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.full_sort_predict(batch), before)

    resumed = get_trainer(config["MODEL_TYPE"], config["model"])(config, loaded)
    resumed.resume_checkpoint(trainer.saved_model_file)
    assert resumed.start_epoch == 1


def test_not_a_checkpoint_is_refused(tmp_path):
    bogus = tmp_path / "bogus.pth"
    torch.save({"weights": torch.zeros(1)}, bogus)
    with pytest.raises(ValueError, match="not a checkpoint written by recbole_sasrec"):
        load_data_and_model(str(bogus))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
def test_a_checkpoint_from_a_gpu_run_loads_on_cpu(trained, tmp_path):
    """A checkpoint whose config asks for GPU 0 (as one trained on a GPU does) loads here on CPU."""
    model_file, _ = trained
    checkpoint = torch.load(model_file, weights_only=True)
    checkpoint["config"].update(gpu_id="0", use_gpu=True)
    gpu_file = tmp_path / "gpu.pth"
    torch.save(checkpoint, gpu_file)
    rec = Recommender(str(gpu_file))
    assert rec.config["device"] == torch.device("cpu")
    assert next(rec.model.parameters()).device.type == "cpu"
    assert rec.recommend(item_sequences=[["5", "6", "7"]], k=1)[0][0].item == "8"


def test_a_changed_catalogue_is_refused_naming_both(trained_relative, tmp_path):
    root, model_file = trained_relative
    copy = tmp_path / "copy"
    (tmp_path / "log.txt").write_text(log_lines(extra=3))  # items shifted: a new catalogue
    convert(str(tmp_path / "log.txt"), str(copy), "toy")
    for load in (
        lambda: Recommender(model_file, data_path=str(copy)),
        lambda: load_data_and_model(model_file, data_path=str(copy)),
    ):
        with pytest.raises(ConfigError) as error:
            load()
        message = str(error.value)
        assert "was trained on 30 users" in message and "items no longer map" in message
        assert str(root / "data" / "toy" / "toy.inter") in message  # the training data
        assert str(copy / "toy" / "toy.inter") in message  # and the data now


FRESH_PROCESS_JOB = """
import json
from recbole_sasrec import load_data_and_model
from recbole_sasrec.integration.trainer import get_trainer


def job(model_file, what):
    config, model, _, train, valid, test = load_data_and_model(model_file)
    trainer = get_trainer(config['MODEL_TYPE'], config['model'])(config, model)
    if what == 'evaluate':
        return dict(trainer.evaluate(test, load_best_model=False))
    trainer.resume_checkpoint(model_file)
    config['epochs'] = trainer.start_epoch + 1
    trainer.epochs = config['epochs']
    _, best = trainer.fit(train, valid, saved=False, show_progress=False)
    return dict(best)
"""


def test_load_and_evaluate_and_resume_in_fresh_processes(tmp_path, monkeypatch):
    """A fresh process loads the checkpoint (plain data, weights-only, a relative data_path)
    and evaluates it to the very test metrics the training run printed for it; and resumes
    training for one epoch to the very metrics this process gets resuming the same file (one
    seed: the same draws, the same sums)."""
    root = tmp_path / "fresh"
    root.mkdir()
    result = train_converted(root, log_lines(), "data", "toy", epochs=3)
    model_file = result["model_file"]
    monkeypatch.chdir(root)  # the checkpoint's data_path is relative: data/
    here = {}
    exec(FRESH_PROCESS_JOB, here)
    expected = {
        "evaluate": dict(result["test_result"]),
        "resume": here["job"](model_file, "resume"),
    }
    code = FRESH_PROCESS_JOB + "import sys\nprint(json.dumps(job(sys.argv[1], sys.argv[2])))\n"
    for what in ("evaluate", "resume"):
        out = subprocess.run(
            [sys.executable, "-c", code, model_file, what],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        metrics = json.loads(out.stdout.strip().splitlines()[-1])
        assert metrics == expected[what], what


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "ran"
    bad = tmp_path / "bad.pth"
    torch.save({"config": Payload(marker), "state_dict": {}}, bad)
    for load in (lambda: Recommender(str(bad)), lambda: load_data_and_model(str(bad))):
        with pytest.raises(ConfigError, match="needs full unpickling.*allow_pickle=True"):
            load()
    assert main(["attention", "--model-file", str(bad), "--user", "1"]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert not marker.exists()  # nothing in the file ran


def test_the_refusal_names_the_unsafe_globals_in_a_fixed_order(tmp_path, monkeypatch):
    """torch returns them from a set (another order in every process): the message sorts them,
    so it names the same ones every time (the first eight)."""
    bad = tmp_path / "bad.pth"
    torch.save({"config": Payload(tmp_path / "ran"), "state_dict": {}}, bad)
    names = [f"m{i:02d}.C" for i in range(10)][::-1]
    monkeypatch.setattr(torch.serialization, "get_unsafe_globals_in_checkpoint", lambda _: names)
    with pytest.raises(ConfigError) as error:
        Recommender(str(bad))
    assert "it names m00.C, m01.C, m02.C, m03.C, m04.C, m05.C, m06.C, m07.C and 2 more," in str(
        error.value
    )
    assert not (tmp_path / "ran").exists()


def test_checkpoints_load_with_weights_only_and_the_old_format_on_request(
    trained_relative, tmp_path
):
    _, model_file = trained_relative
    checkpoint = torch.load(model_file, weights_only=True)  # plain data only
    assert checkpoint["format"] == "recbole_sasrec/1" and isinstance(checkpoint["config"], dict)
    assert checkpoint["data"]["items"] == 20
    assert os.path.isabs(checkpoint["config"]["data_path"])  # 10: stored absolute
    # the old format pickled the Config: refused, then loaded when allowed
    from recbole_sasrec.integration.checkpoint import config_from_plain

    old = dict(checkpoint, config=config_from_plain(checkpoint["config"]))
    old_file = tmp_path / "old.pth"
    torch.save(old, old_file)
    with pytest.raises(ConfigError, match="recbole_sasrec.integration.config.Config"):
        Recommender(str(old_file))
    rec = Recommender(str(old_file), allow_pickle=True)
    # the same weights: the same recommendations as the file in today's format
    assert rec.recommend(users=["1"], k=3) == Recommender(model_file).recommend(users=["1"], k=3)
    assert main(["recommend", "--model-file", str(old_file), "--user", "1", "--allow-pickle"]) == 0


def test_runs_started_in_one_second_never_share_a_checkpoint(tiny, monkeypatch):
    import recbole.trainer.trainer as recbole_trainer

    monkeypatch.setattr(recbole_trainer, "get_local_time", lambda: "Dec-03-2026_10-00-00")
    files = []
    for seed in (1, 2):
        config, net, *_ = build("SASRec", "cycle", dict(tiny, seed=seed, epochs=1))
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        files.append(trainer.saved_model_file)
    assert files[0] != files[1]
    assert all(os.path.basename(f).startswith("SASRec-Dec-03-2026_10-00-00-") for f in files)


def test_a_configuration_edited_to_no_longer_fit_its_weights_is_named(trained_relative, tmp_path):
    _, model_file = trained_relative
    checkpoint = torch.load(model_file, weights_only=True)
    checkpoint["config"]["hidden_size"] = 64  # trained with 32
    edited = tmp_path / "edited.pth"
    torch.save(checkpoint, edited)
    item_table = next(k for k, v in checkpoint["state_dict"].items() if list(v.shape) == [21, 32])
    for load in (lambda: Recommender(str(edited)), lambda: load_data_and_model(str(edited))):
        with pytest.raises(ConfigError) as error:
            load()
        message = str(error.value)
        assert message.startswith(
            f"model_file={str(edited)!r}: its configuration does not fit its weights (edited, or "
            f"the weights of another model): "
        )
        assert f"{item_table}: [21, 32] in the file, [21, 64] built" in message
        assert message.endswith(
            "allowed: the configuration the weights were trained with (hidden_size, inner_size, "
            "n_layers, MAX_ITEM_LIST_LENGTH, ... as training wrote them)"
        )


def test_a_checkpoint_of_another_format_is_refused_naming_it(trained_relative, tmp_path):
    from recbole_sasrec.integration.checkpoint import package_version

    _, model_file = trained_relative
    checkpoint = torch.load(model_file, weights_only=True)
    checkpoint["format"] = "recbole_sasrec/2"
    other = tmp_path / "other.pth"
    torch.save(checkpoint, other)
    with pytest.raises(ConfigError) as error:
        Recommender(str(other))
    assert str(error.value) == (
        f"model_file={str(other)!r} is not a checkpoint written by recbole_sasrec "
        f"{package_version()}: it records format 'recbole_sasrec/2'; allowed: format "
        f"'recbole_sasrec/1'"
    )


def test_recbole_s_ml_100k_is_found_again_wherever_recbole_is_installed():
    """A checkpoint of the bundled ml-100k stores no data_path (one would point into this
    environment's site-packages, and a data_path given for ml-100k is read)."""
    from recbole_sasrec import Config
    from recbole_sasrec.integration.checkpoint import config_from_plain, config_to_plain

    plain = config_to_plain(Config("SASRec", "ml-100k"))
    assert "data_path" not in plain
    assert config_from_plain(plain)["data_path"] == Config("SASRec", "ml-100k")["data_path"]


def test_a_data_path_given_for_an_ml_100k_checkpoint_is_read_or_refused(tmp_path):
    """recommend/export --data-path: the copy there, never RecBole's in its place."""
    from conftest import write_cycle_dataset

    from recbole_sasrec import Config
    from recbole_sasrec.integration.checkpoint import config_from_plain, config_to_plain

    plain = config_to_plain(Config("SASRec", "ml-100k"))
    root = write_cycle_dataset(tmp_path / "copy", name="ml-100k")
    assert config_from_plain(plain, str(root))["data_path"] == str(root / "ml-100k")
    with pytest.raises(ConfigError, match=rf"^data_path='{tmp_path}' holds no {tmp_path}/ml-100k"):
        config_from_plain(plain, str(tmp_path))


def test_a_full_disk_at_a_save_names_the_file_and_keeps_the_last_checkpoint(tiny, request):
    from recbole_sasrec.core.files import NoSpaceError

    config, model, train, valid, _ = build("SASRec", "cycle", dict(tiny, epochs=1))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train, valid, saved=True, show_progress=False)
    path = trainer.saved_model_file
    before = open(path, "rb").read()
    request.getfixturevalue("full_disk")  # from here on
    with pytest.raises(NoSpaceError) as error:
        trainer._save_checkpoint(1)
    assert str(error.value) == (
        f"cannot write {path}: the file system holding {os.path.dirname(path)} is full (No space "
        f"left on device); {path} is left as it was (the last good copy); allowed: free space "
        f"there, or write elsewhere"
    )
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(os.path.dirname(path))) == [os.path.basename(path)]  # no .tmp


def test_a_new_run_removes_the_half_written_checkpoints_a_stopped_run_left(tiny, caplog):
    saved = tiny["checkpoint_dir"]
    os.makedirs(saved)
    stale = os.path.join(saved, ".SASRec-Dec-03-2026_10-00-00-abc123.pth.k2j_3x9a.tmp")
    fresh = os.path.join(saved, ".SASRec-Dec-03-2026_10-00-01-def456.pth.p0q_8rt1.tmp")
    other = os.path.join(saved, ".notes.txt.a1b2c3d4.tmp")  # not a checkpoint: not ours to judge
    for path in (stale, fresh, other):
        open(path, "wb").close()
    os.utime(stale, (1e9, 1e9))  # written in 2001: before this process started
    os.utime(other, (1e9, 1e9))
    config, model, *_ = build("SASRec", "cycle", dict(tiny, epochs=1))
    with caplog.at_level("WARNING"):
        get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    assert not os.path.exists(stale)
    assert os.path.exists(fresh) and os.path.exists(other)  # a run saving now; not a checkpoint
    assert [r.getMessage() for r in caplog.records if "removed" in r.getMessage()] == [
        f"removed {stale}: a checkpoint (SASRec-Dec-03-2026_10-00-00-abc123.pth) that a stopped "
        f"run was writing"
    ]


def test_run_py_stopped_by_sigterm_exits_cleanly_and_leaves_no_half_checkpoint(tiny, tmp_path):
    import signal
    import time

    import yaml
    from conftest import REPO

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(dict(tiny, epochs=500, stopping_step=500)))
    saved = tmp_path / "saved"
    run = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "--dataset=cycle", f"--config_files={config_file}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(saved.glob("*.pth")) and time.monotonic() < deadline:
            time.sleep(0.05)  # training: a checkpoint every validation that improves
        assert run.poll() is None, run.stderr.read()[-2000:]
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 128 + signal.SIGTERM  # SystemExit, not the signal's death
    finally:
        run.kill()
        run.stderr.close()
    assert [p.name for p in saved.iterdir() if p.suffix == ".tmp"] == []
    assert len(list(saved.glob("*.pth"))) == 1
