"""Checkpoints: round trip and resume, fresh processes, data fingerprints, and files that cannot run code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import build, log_lines

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


def test_load_and_evaluate_and_resume_in_fresh_processes(trained_relative):
    root, model_file = trained_relative
    code = (
        "import sys, json\n"
        "from recbole_sasrec import load_data_and_model\n"
        "from recbole_sasrec.integration.trainer import get_trainer\n"
        "config, model, _, train, valid, test = load_data_and_model(sys.argv[1])\n"
        "trainer = get_trainer(config['MODEL_TYPE'], config['model'])(config, model)\n"
        "if sys.argv[2] == 'evaluate':\n"
        "    print(json.dumps(dict(trainer.evaluate(test, load_best_model=False))))\n"
        "else:\n"
        "    trainer.resume_checkpoint(sys.argv[1])\n"
        "    config['epochs'] = trainer.start_epoch + 1\n"
        "    trainer.epochs = config['epochs']\n"
        "    _, best = trainer.fit(train, valid, saved=False, show_progress=False)\n"
        "    print(json.dumps(dict(best)))\n"
    )
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
        assert 0 <= metrics["ndcg@10"] <= 1


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
    assert rec.recommend(users=["1"], k=3)[0][0].item
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
