"""Trustworthy in daily use: nothing lost, nothing silently wrong, safe checkpoints, RecBole's
named data sets, batch recommendations. One test (or more) per case of the issue."""

from __future__ import annotations

import http.server
import io
import json
import os
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TINY, write_cycle_dataset

from recbole_sasrec import ConfigError, Recommender, load_data_and_model, run_recbole
from recbole_sasrec.__main__ import main
from recbole_sasrec.convert import ConvertError, convert

REPO = Path(__file__).resolve().parent.parent


def log_lines(n_users=30, n_items=20, extra=0) -> str:
    """A SASRec-format log: users walk the cycle i -> i + 1 over n_items items."""
    lines = []
    for u in range(1, n_users + 1):
        for t in range(6 + u % 5):
            lines.append(f"{u} {(3 * u + t) % n_items + 1 + extra}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A converted data set under data/ and a model trained on it (relative data_path)."""
    root = tmp_path_factory.mktemp("trust")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        (root / "log.txt").write_text(log_lines())
        convert("log.txt", "data", "toy")
        cfg = dict(TINY, data_path="data", epochs=3, checkpoint_dir=str(root / "saved"))
        result = run_recbole("SASRec", "toy", config_dict=cfg)
        return root, result["model_file"]
    finally:
        os.chdir(cwd)


# ---- 1. re-converting, and checkpoints that know their data ----------------------------------------
def test_convert_refuses_an_existing_name_unless_told_to_replace(tmp_path):
    (tmp_path / "log.txt").write_text(log_lines())
    convert(str(tmp_path / "log.txt"), str(tmp_path / "data"), "toy")
    with pytest.raises(
        ConvertError, match="exists: data set 'toy' was converted before.*--replace"
    ):
        convert(str(tmp_path / "log.txt"), str(tmp_path / "data"), "toy")
    (tmp_path / "log.txt").write_text(log_lines(extra=5))
    convert(str(tmp_path / "log.txt"), str(tmp_path / "data"), "toy", replace=True)
    assert "\t25\t" in (tmp_path / "data" / "toy" / "toy.inter").read_text()


def test_a_changed_catalogue_is_refused_naming_both(trained, tmp_path):
    root, model_file = trained
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


# ---- 2. misspelled configuration keys ----------------------------------------------------------------
def test_misspelled_keys_are_refused_before_loading(tiny, tmp_path):
    with pytest.raises(ConfigError, match="'n_layer' is not a key.*did you mean 'n_layers'"):
        run_recbole("SASRec", "cycle", config_dict=dict(tiny, n_layer=1))
    with pytest.raises(ConfigError, match="'hiden_size'.*did you mean 'hidden_size'"):
        run_recbole("SASRec", "cycle", config_dict=dict(tiny, hiden_size=32))
    assert not (tmp_path / "log").exists()  # refused before anything ran
    # a deliberate extra key, declared, passes
    cfg = dict(tiny, epochs=1, my_tag="x", extra_keys=["my_tag"])
    assert run_recbole("SASRec", "cycle", config_dict=cfg, saved=False)["test_result"]


def test_run_py_refuses_a_misspelled_key(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "--n_layer=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 1
    assert "command line --n_layer: 'n_layer' is not a key SASRec" in out.stderr
    assert "did you mean 'n_layers'" in out.stderr


# ---- 3. a search that fails or is interrupted keeps what it ran ------------------------------------
def test_search_writes_every_trial_as_it_ends(tiny, tmp_path, monkeypatch):
    from recbole_sasrec.tuning import hyperopt as driver

    space = tmp_path / "sasrec.test"
    space.write_text("n_heads choice [3, 2, 4]\n")  # 3 does not divide hidden_size 32
    output = tmp_path / "out.result"
    seen = []
    real = driver.objective_function

    def objective(params, *args, **kwargs):
        seen.append(output.read_text() if output.exists() else "")
        if len(seen) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the third trial
        return real(params, *args, **kwargs)

    monkeypatch.setattr(driver, "objective_function", objective)
    with pytest.raises(KeyboardInterrupt):
        driver.run_hyperopt(
            space, dataset="cycle", config_dict=dict(tiny, epochs=1), output_file=output
        )
    text = output.read_text()
    assert text.startswith("# SASRec on cycle: Hyperopt exhaustive search, 2 trials")
    trials = [line for line in text.splitlines() if line.startswith("trial ")]
    assert len(trials) == 2  # the two that ended before Ctrl-C
    if "n_heads:3" in text:  # the invalid point, recorded as failed; the search went on
        assert (
            "n_heads:3 (failed: ConfigError: hidden_size=32 is not divisible by n_heads=3" in text
        )
    assert "best trial" in text
    assert seen[1].count("trial 1:") == 1  # written before the second trial began


# ---- 4. a checkpoint evaluated or resumed in a fresh process ---------------------------------------
def test_load_and_evaluate_and_resume_in_fresh_processes(trained):
    root, model_file = trained
    code = (
        "import sys, json\n"
        "from recbole_sasrec import load_data_and_model\n"
        "from recbole_sasrec.trainer import get_trainer\n"
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


# ---- 5 and 8. refused before loading -------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"eval_args": {"mode": "uni0"}}, "uni<N> needs N >= 1"),
        ({"epochs": 0}, "epochs=0 must be a positive integer"),
        ({"valid_metric": "Recall@20"}, "valid_metric='Recall@20' is not computed"),
        ({"train_batch_size": 0}, "train_batch_size=0 must be a positive integer"),
        ({"learning_rate": -0.1}, "learning_rate=-0.1 must be a number > 0"),
        ({"learning_rate": "fast"}, "learning_rate='fast' must be a number > 0"),
    ],
)
def test_bad_training_settings_are_refused_before_loading(tiny, tmp_path, overrides, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        run_recbole("SASRec", "cycle", config_dict=dict(tiny, **overrides))
    assert not (tmp_path / "log").exists()


@pytest.mark.parametrize(
    ("model", "expected"), [(3, "model=3 is neither"), (dict, "not a RecBole")]
)
def test_a_model_that_is_not_a_name_or_a_model_class(tiny, model, expected):
    with pytest.raises(ConfigError, match=expected):
        run_recbole(model, "cycle", config_dict=tiny)


def test_a_yaml_error_names_the_file_and_line(tiny, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rate: [0.1\nhidden_size: 32\n")
    with pytest.raises(ConfigError, match=r"config file '.*bad.yaml', line \d: not valid YAML"):
        run_recbole("SASRec", "cycle", config_file_list=[str(bad)], config_dict=tiny)
    with pytest.raises(ConfigError, match="config file 'nowhere.yaml' does not exist"):
        run_recbole("SASRec", "cycle", config_file_list=["nowhere.yaml"], config_dict=tiny)


def test_run_hyper_takes_its_own_options_literally(tiny, tmp_path):
    import yaml

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(dict(tiny, epochs=1)))
    space = tmp_path / "sasrec.test"
    space.write_text("n_layers choice [1]\n")
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_hyper.py"),
            f"--params_file={space}",
            "--dataset=cycle",
            f"--config_files={config_file}",
            "--output_file=int.result",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "int.result").read_text().count("(completed)") == 2  # the trial + best


def test_too_few_interactions_for_a_validation_row_is_said_with_counts(tmp_path):
    (tmp_path / "few").mkdir()
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    rows += [f"u{u}\ti{t}\t{t}" for u in range(1, 6) for t in range(1, 1 + u % 4)]
    (tmp_path / "few" / "few.inter").write_text("\n".join(rows) + "\n")
    with pytest.raises(ConfigError) as error:
        run_recbole("SASRec", "few", config_dict=dict(TINY, data_path=str(tmp_path)))
    message = str(error.value)
    assert "gives no valid rows" in message and "at least 4 interactions" in message
    assert "1: 2, 2: 1, 3: 1" in message  # users by their number of interactions


# ---- 6. convert's input -----------------------------------------------------------------------------
def test_convert_reads_through_a_byte_order_mark(tmp_path):
    (tmp_path / "log.txt").write_text("\ufeff" + log_lines(), encoding="utf-8")
    inter = convert(str(tmp_path / "log.txt"), str(tmp_path / "a"), "bom")
    assert inter.read_text().splitlines()[1].startswith("1\t")
    (tmp_path / "log.csv").write_text("\ufeffuser,item\n1,5\n1,6\n", encoding="utf-8")
    inter = convert(
        str(tmp_path / "log.csv"),
        str(tmp_path / "b"),
        "bomcsv",
        fmt="csv",
        user_col="user",
        item_col="item",
    )
    assert inter.read_text().splitlines()[1:] == ["1\t5\t0", "1\t6\t1"]


def test_convert_rejects_a_tab_inside_a_quoted_field_with_its_line(tmp_path):
    (tmp_path / "log.csv").write_text('user,item\n1,5\n2,"a\tb"\n')
    with pytest.raises(ConvertError, match=r"line 3: item \(item\) 'a\\tb' holds a tab"):
        convert(
            str(tmp_path / "log.csv"),
            str(tmp_path / "o"),
            "t",
            fmt="csv",
            user_col="user",
            item_col="item",
        )
    assert not (tmp_path / "o" / "t" / "t.inter").exists()


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", ".."])
def test_convert_refuses_names_that_are_not_plain(tmp_path, name):
    (tmp_path / "log.txt").write_text(log_lines())
    with pytest.raises(ConvertError, match="is not a data set name"):
        convert(str(tmp_path / "log.txt"), str(tmp_path / "out"), name)


def test_convert_reports_duplicates_and_writes_normal_permissions(tmp_path):
    (tmp_path / "log.csv").write_text("user,item,ts\n1,5,10\n1,5,10\n1,6,11\n")
    notes = []
    old = os.umask(0o022)
    try:
        inter = convert(
            str(tmp_path / "log.csv"),
            str(tmp_path / "o"),
            "d",
            fmt="csv",
            user_col="user",
            item_col="item",
            time_col="ts",
            report=notes.append,
        )
    finally:
        os.umask(old)
    assert notes == [
        "1 of 3 rows repeat an earlier row (same user, item and timestamp); kept "
        "(RecBole's rm_dup_inter: user drops them)"
    ]
    assert stat.S_IMODE(inter.stat().st_mode) == 0o644


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_convert_to_a_read_only_folder_is_one_line(tmp_path):
    (tmp_path / "log.txt").write_text(log_lines())
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConvertError, match="cannot write the data set: Permission denied"):
            convert(str(tmp_path / "log.txt"), str(locked), "x")
    finally:
        locked.chmod(0o700)


def test_convert_to_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "log.txt").write_text(log_lines())
    import recbole_sasrec.files as files

    real = files.os.fdopen

    def full(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)

        def write(_):
            raise OSError(
                28, "No space left on device", str(tmp_path / "out" / "x" / ".x.inter.tmp")
            )

        f.write = write
        return f

    monkeypatch.setattr(files.os, "fdopen", full)
    argv = [
        "convert",
        "--input",
        str(tmp_path / "log.txt"),
        "--name",
        "x",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot write the data set: No space left on device" in err
    assert not list((tmp_path / "out" / "x").glob("*"))  # nothing left behind


# ---- 7. checkpoints that cannot run code -------------------------------------------------------------
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


def test_checkpoints_load_with_weights_only_and_the_old_format_on_request(trained, tmp_path):
    _, model_file = trained
    checkpoint = torch.load(model_file, weights_only=True)  # plain data only
    assert checkpoint["format"] == "recbole_sasrec/1" and isinstance(checkpoint["config"], dict)
    assert checkpoint["data"]["items"] == 20
    assert os.path.isabs(checkpoint["config"]["data_path"])  # 10: stored absolute
    # the old format pickled the Config: refused, then loaded when allowed
    from recbole_sasrec.checkpoint import config_from_plain

    old = dict(checkpoint, config=config_from_plain(checkpoint["config"]))
    old_file = tmp_path / "old.pth"
    torch.save(old, old_file)
    with pytest.raises(
        ConfigError, match="recbole.config.configurator.Config|recbole_sasrec.config.Config"
    ):
        Recommender(str(old_file))
    rec = Recommender(str(old_file), allow_pickle=True)
    assert rec.recommend(users=["1"], k=3)[0][0].item
    assert main(["recommend", "--model-file", str(old_file), "--user", "1", "--allow-pickle"]) == 0


# ---- 8. errors of recommend and attention -------------------------------------------------------------
def test_attention_on_a_model_without_attention_maps(tmp_path):
    root = write_cycle_dataset(tmp_path / "data")
    cfg = dict(TINY, data_path=str(root), epochs=1, checkpoint_dir=str(tmp_path / "saved"))
    for key in ("inner_size", "n_layers", "n_heads", "hidden_dropout_prob", "attn_dropout_prob"):
        cfg.pop(key)
    model_file = run_recbole("GRU4Rec", "cycle", config_dict=cfg)["model_file"]
    with pytest.raises(ConfigError, match="is a GRU4Rec checkpoint, which has no attention maps"):
        Recommender(model_file).attention(user="u1")


def test_k_above_what_can_be_recommended_says_how_many(trained):
    _, model_file = trained
    rec = Recommender(model_file)
    seen = len(set(rec.history("1")))
    with pytest.raises(ValueError, match=f"has 20 items, {20 - seen} of them not in the history"):
        rec.recommend(users=["1"], k=20)
    assert len(rec.recommend(users=["1"], k=20 - seen)[0]) == 20 - seen


# ---- 10. data_path ------------------------------------------------------------------------------------
def test_recommend_from_another_folder_and_from_moved_data(trained, tmp_path, monkeypatch):
    root, model_file = trained
    monkeypatch.chdir(tmp_path)  # the checkpoint stored data/ absolute
    assert Recommender(model_file).recommend(users=["2"], k=1)[0]
    moved = tmp_path / "moved"
    (moved / "toy").mkdir(parents=True)
    (moved / "toy" / "toy.inter").write_bytes((root / "data" / "toy" / "toy.inter").read_bytes())
    argv = ["recommend", "--model-file", model_file, "--user", "2", "--data-path", str(moved)]
    assert main(argv) == 0


# ---- 11. RecBole's named data sets ---------------------------------------------------------------------
@pytest.fixture
def zip_server(tmp_path):
    """A local HTTP server with a small zip in RecBole's layout: ``ml-1m.inter`` at the top."""
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"{u}\t{(u + t) % 25 + 1}\t4\t{t}" for u in range(1, 41) for t in range(8)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("ml-1m.inter", "\n".join(inter) + "\n")
    served = tmp_path / "served"
    served.mkdir()
    (served / "ml-1m.zip").write_bytes(buffer.getvalue())
    (served / "broken.zip").write_bytes(buffer.getvalue()[:100])

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_recbole_data_set_is_downloaded_and_trained_on(tmp_path, zip_server, monkeypatch):
    from recbole_sasrec import download

    monkeypatch.setitem(download._urls(), "ml-1m", f"{zip_server}/ml-1m.zip")
    cfg = dict(TINY, data_path=str(tmp_path / "data"), epochs=2)
    result = run_recbole("SASRec", "ml-1m", config_dict=cfg, saved=False)
    assert (tmp_path / "data" / "ml-1m" / "ml-1m.inter").is_file()
    assert result["test_result"]["hit@10"] > 0
    # a broken download leaves nothing a later run would read
    monkeypatch.setitem(download._urls(), "ml-1m", f"{zip_server}/broken.zip")
    cfg["data_path"] = str(tmp_path / "other")
    with pytest.raises(ConfigError, match="from .*/broken.zip is not a zip archive"):
        run_recbole("SASRec", "ml-1m", config_dict=cfg, saved=False)
    assert not (tmp_path / "other" / "ml-1m").exists()
    assert not list((tmp_path / "other").glob(".ml-1m.download-*"))
    with pytest.raises(ConfigError, match="not a data set RecBole downloads"):
        run_recbole("SASRec", "no-such-set", config_dict=dict(TINY, data_path=str(tmp_path)))


# ---- 12. batch recommendations --------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_all_users_to_csv_or_parquet_equal_one_by_one(trained, tmp_path, suffix):
    _, model_file = trained
    out = tmp_path / f"top{suffix}"
    assert (
        main(
            [
                "recommend",
                "--model-file",
                model_file,
                "--all-users",
                "--k",
                "4",
                "--out",
                str(out),
                "--batch-size",
                "7",
            ]
        )
        == 0
    )
    table = (
        pd.read_csv(out, dtype={"user": str, "item": str})
        if suffix == ".csv"
        else pd.read_parquet(out)
    )
    assert list(table.columns) == ["user", "rank", "item", "score"] and len(table) == 30 * 4
    rec = Recommender(model_file)
    frame = rec.recommend_all(k=4)
    for user in ("1", "17", "30"):
        one = [r.item for r in rec.recommend(users=[user], k=4)[0]]
        assert table[table.user == user].item.tolist() == one
        assert frame[frame.user == user].item.tolist() == one
    users_file = tmp_path / "users.txt"
    users_file.write_text("3\n5\n")
    assert (
        main(
            [
                "recommend",
                "--model-file",
                model_file,
                "--users-file",
                str(users_file),
                "--out",
                str(tmp_path / "two.csv"),
            ]
        )
        == 0
    )
    assert pd.read_csv(tmp_path / "two.csv", dtype={"user": str}).user.unique().tolist() == [
        "3",
        "5",
    ]
