"""Recommendations and attention maps from a saved model, in the data's tokens; batch files."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, train_gru4rec

from recbole_sasrec import ConfigError, Recommender, run_recbole
from recbole_sasrec.__main__ import main
from recbole_sasrec.inference.output import read_titles
from recbole_sasrec.inference.recommender import recommend

N_ITEMS = 30


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


def test_many_sequences_are_ranked_in_batches_with_the_same_answers(trained, monkeypatch):
    from recbole_sasrec.inference import recommender

    rec = Recommender(trained[0])
    sequences = [[str(i % N_ITEMS + 1) for i in range(s, s + 2 + s % 5)] for s in range(7)]
    whole = rec.recommend(item_sequences=sequences, k=4)
    monkeypatch.setattr(recommender, "RECOMMEND_BATCH", 3)  # batches of 3, 3 and 1
    batched = rec.recommend(item_sequences=sequences, k=4)
    assert [[r.item for r in top] for top in batched] == [[r.item for r in top] for top in whole]
    scores = [[r.score for r in top] for top in batched]
    np.testing.assert_allclose(scores, [[r.score for r in top] for top in whole], rtol=1e-5)
    for seq, top in zip(sequences, batched, strict=True):  # each batch's own exclusions
        assert not set(seq) & {r.item for r in top}


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


def test_attention_on_a_model_without_attention_maps(tmp_path):
    model_file = train_gru4rec(tmp_path)
    with pytest.raises(ConfigError, match="is a GRU4Rec checkpoint, which has no attention maps"):
        Recommender(model_file).attention(user="u1")


def test_k_above_what_can_be_recommended_says_how_many(trained_relative):
    _, model_file = trained_relative
    rec = Recommender(model_file)
    seen = len(set(rec.history("1")))
    with pytest.raises(ValueError, match=f"has 20 items, {20 - seen} of them not in the history"):
        rec.recommend(users=["1"], k=20)
    assert len(rec.recommend(users=["1"], k=20 - seen)[0]) == 20 - seen


def test_recommend_from_another_folder_and_from_moved_data(trained_relative, tmp_path, monkeypatch):
    root, model_file = trained_relative
    monkeypatch.chdir(tmp_path)  # the checkpoint stored data/ absolute
    assert Recommender(model_file).recommend(users=["2"], k=1)[0]
    moved = tmp_path / "moved"
    (moved / "toy").mkdir(parents=True)
    (moved / "toy" / "toy.inter").write_bytes((root / "data" / "toy" / "toy.inter").read_bytes())
    argv = ["recommend", "--model-file", model_file, "--user", "2", "--data-path", str(moved)]
    assert main(argv) == 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_all_users_to_csv_or_parquet_equal_one_by_one(trained_relative, tmp_path, suffix):
    _, model_file = trained_relative
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


def test_batch_output_is_checked_before_anything_is_loaded(trained_relative, tmp_path, capsys):
    _, model_file = trained_relative
    batch = ["recommend", "--model-file", model_file, "--all-users", "--k", "2", "--out"]
    # a folder that does not exist: one line naming it, before the model loads
    assert main([*batch, str(tmp_path / "no" / "top.csv")]) == 2
    err = capsys.readouterr().err
    assert f"folder {str(tmp_path / 'no')!r} does not exist" in err and "Traceback" not in err
    # an existing file is kept unless --replace
    out = tmp_path / "top.csv"
    out.write_text("keep me\n")
    assert main([*batch, str(out)]) == 2
    assert "exists; allowed: another file, or replace=True" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"
    assert main([*batch, str(out), "--replace"]) == 0
    assert out.read_text().startswith("user,rank,item,score")
    with pytest.raises(ValueError, match="exists"):
        Recommender(model_file).write_recommendations(out, k=2)


def test_a_user_listed_again_is_written_once(trained_relative, tmp_path, capsys):
    _, model_file = trained_relative
    users = tmp_path / "users.txt"
    users.write_text("3\n7\n3\n3\n")
    out = tmp_path / "top.csv"
    args = ["recommend", "--model-file", model_file, "--users-file", str(users), "--k", "2"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 repeated users left out" in printed and "top 2 for 2 users" in printed
    table = pd.read_csv(out, dtype={"user": str})
    assert table.user.tolist() == ["3", "3", "7", "7"]


def test_a_zeroed_item_table_is_refused_naming_the_file(trained_relative, tmp_path):
    _, model_file = trained_relative
    checkpoint = torch.load(model_file, weights_only=True)
    checkpoint["state_dict"]["embedding.item.weight"].zero_()
    zeroed = str(tmp_path / "zeroed.pth")
    torch.save(checkpoint, zeroed)
    with pytest.raises(ConfigError) as error:
        Recommender(zeroed)
    assert str(error.value) == (
        f"model_file={zeroed!r}: the item table is all zeros (every item would score 0); "
        f"allowed: a trained checkpoint"
    )


@pytest.fixture(scope="module")
def rec(trained_relative):
    return Recommender(trained_relative[1])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.recommend(users="3"), r"users='3' is a string; allowed: a list of tokens"),
        (
            lambda r: r.recommend(item_sequences=["5", "6"]),
            r"item_sequences\[0\]='5' is a string",
        ),
        (lambda r: r.recommend(item_sequences="56"), r"item_sequences='56' is a string"),
        (lambda r: r.recommend(users=["3"], k=2.0), "k=2.0 must be a positive integer"),
        (lambda r: r.recommend(users=["3"], k=True), "k=True must be a positive integer"),
        (lambda r: r.recommend(users=["3"], exclude_seen="no"), "exclude_seen='no' must be"),
        (lambda r: r.iter_recommendations(users="3"), r"users='3' is a string"),
        (lambda r: r.iter_recommendations(batch_size=0), "batch_size=0 must be a positive"),
        (lambda r: r.iter_recommendations(k=np.float64(3)), "k=3.0 must be a positive integer"),
        (lambda r: r.write_recommendations("top.csv", users="3"), r"users='3' is a string"),
        (lambda r: r.write_recommendations("top.csv", k=0), "k=0 must be a positive integer"),
        (lambda r: r.attention(items="242"), r"items='242' is a string"),
        (lambda r: r.attention(user=["3"]), r"user=\['3'\] must be one user token"),
        (lambda r: r.attention(user="3", items=["5"]), "give exactly one of user="),
        (lambda r: r.recommend(item_sequences=[["[PAD]"]]), r"items \['\[PAD\]'\] are not"),
    ],
)
def test_arguments_of_the_wrong_type_are_refused(rec, call, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        call(rec)
    assert not (tmp_path / "top.csv").exists()


def test_numpy_integers_and_empty_requests(rec):
    assert rec.recommend(users=["3"], k=np.int64(4)) == rec.recommend(users=["3"], k=4)
    assert rec.recommend(users=[], k=4) == [] and rec.recommend(item_sequences=[], k=4) == []
    assert len(rec.recommend_all(users=["3", "5"], k=np.int32(2), batch_size=np.int64(1))) == 4
