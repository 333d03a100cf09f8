"""Bringing your own data, recommending from a saved model, and drawing its attention."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import TINY

from recbole_sasrec import run_recbole
from recbole_sasrec.__main__ import main
from recbole_sasrec.convert import ConvertError, convert
from recbole_sasrec.recommend import Recommender, read_titles, recommend

N_ITEMS = 30


def write_sasrec_log(path, n_users=40):
    """SASRec text format: 'user item' per line, time order within a user, ids from 1.
    Users walk the cycle item i -> i + 1, so the next item is known."""
    lines = []
    for u in range(1, n_users + 1):
        start = (7 * u) % N_ITEMS
        for t in range(8 + u % 9):
            lines.append(f"{u} {(start + t) % N_ITEMS + 1}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Convert a generated log, train on it through run_recbole, return (model file, data dir)."""
    root = tmp_path_factory.mktemp("own")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        log = write_sasrec_log(root / "log.txt")
        inter = convert(str(log), str(root / "data"), "mylog")
        assert inter.read_text().splitlines()[0] == "user_id:token\titem_id:token\ttimestamp:float"
        config = dict(TINY, data_path=str(root / "data"), checkpoint_dir=str(root / "saved"))
        result = run_recbole("SASRec", "mylog", config_dict=config)
        assert result["test_result"]["hit@10"] > 0.9  # trained on the converted file
        return result["model_file"], root
    finally:
        os.chdir(cwd)


def test_recommend_for_a_user_and_a_raw_sequence(trained):
    model_file, _ = trained
    rec = Recommender(model_file)
    # user "3" walks from item 22: 22, 23, ..., 32 -> wraps to 1 and 2 (11 items in all)
    history = [str((21 + t) % N_ITEMS + 1) for t in range(8 + 3 % 9)]
    assert [rec._item_tokens[i] for i in rec.history("3")] == history
    (top,) = rec.recommend(users=["3"], k=5)
    assert len(top) == 5 and [r.rank for r in top] == [1, 2, 3, 4, 5]
    assert top[0].item == str(int(history[-1]) % N_ITEMS + 1)  # the next item of the cycle
    assert not {r.item for r in top} & set(history)  # exclude_seen by default
    assert all(top[i].score >= top[i + 1].score for i in range(4))

    (seq_top,) = rec.recommend(item_sequences=[["5", "6", "7"]], k=3)
    assert seq_top[0].item == "8"
    (kept,) = rec.recommend(item_sequences=[["5", "6", "7"]], k=N_ITEMS, exclude_seen=False)
    assert {"5", "6", "7"} <= {r.item for r in kept}
    (dropped,) = rec.recommend(item_sequences=[["5", "6", "7"]], k=N_ITEMS - 3)
    assert not {"5", "6", "7"} & {r.item for r in dropped}
    # the function form gives the same answer
    assert [r.item for r in recommend(model_file, users=["3"], k=5)[0]] == [r.item for r in top]


def test_long_sequences_use_their_most_recent_items(trained):
    rec = Recommender(trained[0])
    L = rec.max_len
    long = [str(i % N_ITEMS + 1) for i in range(L + 7)]
    a = rec.recommend(item_sequences=[long], k=5, exclude_seen=False)[0]
    b = rec.recommend(item_sequences=[long[-L:]], k=5, exclude_seen=False)[0]
    assert [(r.item, r.score) for r in a] == [(r.item, r.score) for r in b]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": ["nobody"]}, "user='nobody' is not a user"),
        ({"item_sequences": [["5", "999"]]}, r"items \['999'\] are not items"),
        ({"item_sequences": [[]]}, "items is empty"),
        ({"users": ["3"], "k": 0}, "k=0 must be a positive integer"),
        ({}, "exactly one of users"),
    ],
)
def test_bad_requests_are_refused(trained, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Recommender(trained[0]).recommend(**kwargs)


def test_a_file_that_is_not_our_checkpoint_is_refused(tmp_path):
    bogus = tmp_path / "x.pth"
    bogus.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="is not a checkpoint"):
        recommend(str(bogus), users=["1"])


def test_cli_recommend_prints_a_table_and_fails_cleanly(trained, capsys):
    assert main(["recommend", "--model-file", trained[0], "--items", "5,6,7", "--k", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["rank", "item", "score"]
    assert out[2].split()[:2] == ["1", "8"]
    assert main(["recommend", "--model-file", trained[0], "--user", "nobody"]) == 2
    assert "user='nobody'" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["SASRec", "LightSANs"])
def test_attention_figure(trained, tmp_path, model, capsys):
    model_file = trained[0]
    if model == "LightSANs":
        _, root = trained
        cfg = dict(TINY, epochs=2, data_path=str(root / "data"), checkpoint_dir=str(tmp_path))
        model_file = run_recbole("LightSANs", "mylog", config_dict=cfg)["model_file"]
    rec = Recommender(model_file)
    tokens, maps = rec.attention(user="3")
    assert tokens == [rec._item_tokens[i] for i in rec.history("3")][-rec.max_len :]
    T = len(tokens)
    for block in maps:
        for name, w in block.items():
            if w.shape[-1] == T:  # query x key maps: causal, rows sum to 1 over visible keys
                assert torch.all(w.triu(1) == 0), name
            torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    out = tmp_path / "attention.png"
    assert main(["attention", "--model-file", model_file, "--user", "3", "--out", str(out)]) == 0
    n_heads, n_maps = TINY["n_heads"], len(maps[0])
    expected = TINY["n_layers"] * n_heads * n_maps
    assert f"{expected} panels" in capsys.readouterr().out
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"


def test_ml100k_titles():
    import recbole

    titles = read_titles(os.path.join(recbole.__path__[0], "dataset_example", "ml-100k"), "ml-100k")
    assert titles["1"] == "Toy Story"
    assert len(titles) == 1682


def test_convert_csv_with_and_without_timestamps(tmp_path):
    src = tmp_path / "log.csv"
    src.write_text("who,what,when\nb,x,20\na,y,5\nb,z,10\n")
    inter = convert(str(src), str(tmp_path), "c1", "csv", "who", "what", "when")
    assert inter.read_text().splitlines()[1:] == ["b\tx\t20", "a\ty\t5", "b\tz\t10"]
    inter = convert(str(src), str(tmp_path), "c2", "csv", "who", "what")
    assert inter.read_text().splitlines()[1:] == ["b\tx\t0", "a\ty\t0", "b\tz\t1"]


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("sasrec", "1 2\n1 2 3\n", r"line 2: expected 2 columns"),
        ("sasrec", "", "has no interactions"),
        ("csv", "", "the file is empty"),
        ("csv", "u,i,t\n1,2,3\n1,2\n", r"line 3: expected 3 columns"),
        ("csv", "u,i,t\n1,2,3\n1,4,soon\n", r"line 3: timestamp 'soon'"),
    ],
)
def test_convert_errors_name_file_and_line_and_write_nothing(tmp_path, fmt, text, message):
    src = tmp_path / "bad.txt"
    src.write_text(text)
    with pytest.raises(ConvertError, match=message) as error:
        convert(
            str(src), str(tmp_path / "out"), "bad", fmt, "u", "i", "t" if fmt == "csv" else None
        )
    assert str(src) in str(error.value)
    folder = tmp_path / "out" / "bad"
    assert not folder.exists() or not any(folder.iterdir())  # nothing half-written


def test_missing_data_file_is_named_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"no interaction file .*nowhere.inter"):
        run_recbole("SASRec", "nowhere", config_dict={"data_path": str(tmp_path)})


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
