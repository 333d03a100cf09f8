"""RecBole's named data sets, downloaded from a local server, and broken downloads never installed."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile

import pytest
from conftest import TINY

from recbole_sasrec import ConfigError, run_recbole


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
    for name, text in (
        ("empty", ""),
        ("header", inter[0] + "\n"),
        ("ragged", inter[0] + "\n1\t2\n"),
    ):
        z = io.BytesIO()
        with zipfile.ZipFile(z, "w") as archive:
            archive.writestr("ml-1m.inter", text)
        (served / f"{name}.zip").write_bytes(z.getvalue())

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
    from recbole_sasrec.data import download

    monkeypatch.setitem(download._urls(), "ml-1m", f"{zip_server}/ml-1m.zip")
    cfg = dict(TINY, data_path=str(tmp_path / "data"), epochs=2)
    result = run_recbole("SASRec", "ml-1m", config_dict=cfg, saved=False)
    with zipfile.ZipFile(tmp_path / "served" / "ml-1m.zip") as archive:
        served = archive.read("ml-1m.inter")
    assert (tmp_path / "data" / "ml-1m" / "ml-1m.inter").read_bytes() == served
    assert set(result["test_result"]) >= {"hit@10", "ndcg@10"}  # trained and tested on it
    # a broken download leaves nothing a later run would read
    monkeypatch.setitem(download._urls(), "ml-1m", f"{zip_server}/broken.zip")
    cfg["data_path"] = str(tmp_path / "other")
    with pytest.raises(ConfigError, match="from .*/broken.zip is not a zip archive"):
        run_recbole("SASRec", "ml-1m", config_dict=cfg, saved=False)
    assert not (tmp_path / "other" / "ml-1m").exists()
    assert not list((tmp_path / "other").glob(".ml-1m.download-*"))
    with pytest.raises(ConfigError, match="not a data set RecBole downloads"):
        run_recbole("SASRec", "no-such-set", config_dict=dict(TINY, data_path=str(tmp_path)))


@pytest.mark.parametrize(
    "archive, why",
    [
        ("empty", "has no header of name:type fields"),
        ("header", r"has a header \(user_id:token.*\) and no rows"),
        ("ragged", "has a first row without the 4 fields of its header"),
    ],
)
def test_a_download_without_interactions_is_never_installed(
    tmp_path, zip_server, monkeypatch, archive, why
):
    from recbole_sasrec.data import download

    monkeypatch.setitem(download._urls(), "ml-1m", f"{zip_server}/{archive}.zip")
    cfg = dict(TINY, data_path=str(tmp_path / "data"), epochs=1)
    for _ in range(2):  # and the next run downloads it again, with the same clear error
        with pytest.raises(ConfigError, match=f"the ml-1m.inter downloaded from .* {why}"):
            run_recbole("SASRec", "ml-1m", config_dict=cfg, saved=False)
        assert not (tmp_path / "data" / "ml-1m").exists()
