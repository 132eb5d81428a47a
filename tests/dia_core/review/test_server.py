"""The review app's security and error handling (Starlette's TestClient: no socket, fast)."""
from __future__ import annotations

import os

import pytest
from starlette.testclient import TestClient

from dia_core.review import decisions as dec
from dia_core.review.listing import open_review
from dia_core.review.server import create_app

TOKEN, CSRF = "the-token", "the-csrf"
WRITE = {"X-Review-Token": TOKEN, "X-CSRF-Token": CSRF, "Origin": "http://testserver"}


@pytest.fixture
def app(planned):
    review = open_review(planned["path"])
    client = TestClient(create_app(review, TOKEN, CSRF, {"testserver"}), raise_server_exceptions=False)
    return client, planned


def test_every_request_needs_the_token(app):
    client, planned = app
    seg = planned["manifest"]["segments"][0]
    key = seg["attempts"][0]["key"]
    for path in ("/", "/api/project", "/api/chapters/chapter-01", "/audio/out/chapter-01.mp3", f"/audio/take/{key}"):
        assert client.get(path).status_code == 401, path
        assert client.get(path + "?token=wrong").status_code == 403, path
        assert client.get(path, headers={"X-Review-Token": "wrong"}).status_code == 403, path
        assert client.get(path + f"?token={TOKEN}").status_code == 200, path
    assert client.post(f"/api/segments/{seg['id']}/retake", json={}).status_code == 401
    # a DNS-rebound name reaches the port with another Host: refused before anything else
    assert client.get(f"/?token={TOKEN}", headers={"Host": "evil.example"}).status_code == 421


def test_page_and_api_show_every_take(app):
    client, planned = app
    page = client.get(f"/?token={TOKEN}")
    assert "Content-Security-Policy" in page.headers and page.headers["Referrer-Policy"] == "no-referrer"
    assert CSRF in page.text and "Review Test" in page.text
    view = client.get(f"/api/chapters/chapter-01?token={TOKEN}").json()
    assert [t["label"] for t in view["segments"][0]["takes"]] == ["attempt 1", "attempt 2"]
    assert [t["chosen"] for t in view["segments"][0]["takes"]] == [False, True]
    assert client.get(f"/api/chapters/chapter-09?token={TOKEN}").status_code == 404


def test_files_cannot_leave_the_delivery_folder_or_the_store(app, tmp_path):
    client, planned = app
    out = planned["out"]
    (tmp_path / "secret.mp3").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.mp3", out / "link.mp3")          # a symlink that points out
    os.symlink(tmp_path, out / "linkdir")
    assert client.get(f"/audio/out/chapter-01.mp3?token={TOKEN}").content == b"ID3 not really audio"
    refused = ["..%2fproject.yaml", "%2e%2e/%2e%2e/etc/passwd", "%2e%2e%2fmanuscript.md",
               "%252e%252e%252fproject.yaml", "%2fetc%2fpasswd", "..%5cproject.yaml", "link.mp3",
               "linkdir/secret.mp3", ".dia-studio/review.lock", "manifests/..%2f..%2fmanuscript.md"]
    for path in refused:
        r = client.get(f"/audio/out/{path}?token={TOKEN}")
        assert r.status_code in (403, 404) and b"secret" not in r.content and b"title:" not in r.content, path
        assert r.headers["content-type"] == "application/json", path
    assert client.get(f"/audio/out/manifests/chapter-01.json?token={TOKEN}").status_code == 404  # audio only
    assert client.get(f"/audio/take/..%2f..%2fproject.yaml?token={TOKEN}").status_code == 404
    assert client.get(f"/audio/take/{'b' * 64}?token={TOKEN}").status_code == 404   # not in the store


def test_writes_need_same_origin_and_the_csrf_token(app):
    client, planned = app
    sid = planned["manifest"]["segments"][1]["id"]
    url = f"/api/segments/{sid}/retake"
    for headers in ({**WRITE, "Origin": "http://evil.example"}, {k: v for k, v in WRITE.items() if k != "Origin"},
                    {**WRITE, "X-CSRF-Token": "wrong"}, {k: v for k, v in WRITE.items() if k != "X-CSRF-Token"}):
        r = client.post(url, json={"note": "x"}, headers=headers)
        assert r.status_code == 403 and "error" in r.json()
    assert not dec.review_path(planned["project"].root).exists()   # nothing was written
    assert client.get(url + f"?token={TOKEN}").status_code == 405  # no state change by GET
    r = client.post(url, json={"note": "too fast"}, headers=WRITE)
    assert r.status_code == 200 and r.json()["retake"] == {"count": 1, "note": "too fast"}


def test_bad_requests_get_a_4xx_with_a_message(app):
    client, planned = app
    segs = planned["manifest"]["segments"]
    sid = segs[0]["id"]
    cases = [
        (f"/api/segments/{sid}/retake", b"{not json", 400, "malformed JSON"),
        (f"/api/segments/{sid}/retake", b"[1, 2]", 400, "JSON object"),
        (f"/api/segments/{sid}/retake", b'{"note": 5}', 400, "note"),
        (f"/api/segments/{sid}/alternatives", b'{"count": 99}', 400, "alternatives"),
        (f"/api/segments/{sid}/alternatives", b'{"count": true}', 400, "count"),
        (f"/api/segments/{sid}/pin", b'{"take": "' + b"c" * 64 + b'"}', 400, "not one of its takes"),
        (f"/api/segments/{sid}/text", b'{"text": "[S2] other voice"}', 400, "speaker tags"),
        (f"/api/segments/{sid}/explode", b"{}", 404, "unknown action"),
        ("/api/segments/0000000000000000/retake", b"{}", 404, "not in any rendered chapter"),
        ("/api/segments/../../etc/retake", b"{}", 404, ""),
        ("/api/lexicon", b'{"word": " spaced ", "replacement": "x"}', 400, "lexicon"),
        ("/api/lexicon", b"x" * 70_000, 413, "body"),
    ]
    for url, body, status, words in cases:
        r = client.post(url, content=body, headers={**WRITE, "Content-Type": "application/json"})
        assert r.status_code == status, (url, body[:40], r.text)
        assert "Traceback" not in r.text and words in r.json()["error"], (url, r.text)
    assert not dec.review_path(planned["project"].root).exists()

    # the actions the page offers, each saved in review.yaml
    assert client.post(f"/api/segments/{sid}/pin", json={"take": segs[0]["attempts"][0]["key"][:10]},
                       headers=WRITE).status_code == 200
    assert client.post(f"/api/segments/{segs[2]['id']}/alternatives", json={"count": 3}, headers=WRITE).is_success
    assert client.post(f"/api/segments/{segs[3]['id']}/text", json={"text": "[S1] New words."}, headers=WRITE).is_success
    assert client.post("/api/lexicon", json={"word": "pier", "replacement": "peer"}, headers=WRITE).is_success
    d = dec.load(planned["project"].root)
    assert d.get(sid).pin.take == segs[0]["attempts"][0]["key"] and d.get(sid).pin.text == segs[0]["text"]
    assert d.get(segs[2]["id"]).alternatives == 3 and d.get(segs[3]["id"]).text == "[S1] New words."
    assert d.lexicon == {"pier": "peer"}


def test_an_unexpected_failure_is_one_line_without_a_traceback(app, monkeypatch):
    client, planned = app
    from dia_core.review import listing

    monkeypatch.setattr(listing, "segment_takes", lambda s: 1 / 0)
    r = client.get(f"/api/chapters/chapter-01?token={TOKEN}")
    assert r.status_code == 500 and r.json() == {"error": "internal error (ZeroDivisionError); details in the server log"}


def test_the_server_listens_on_loopback_only(planned):
    from dia_core.review.server import make_server

    server, sock, url = make_server(open_review(planned["path"]))
    try:
        assert sock.getsockname()[0] == "127.0.0.1" and url.startswith(f"http://127.0.0.1:{sock.getsockname()[1]}/?token=")
        assert len(url.split("token=")[1]) >= 40   # secrets.token_urlsafe(32)
    finally:
        sock.close()
