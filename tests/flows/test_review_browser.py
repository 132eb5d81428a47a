"""Proof-listening end to end: a rendered project (draft engine, the real `produce` flow), the review
page in a real headless Chromium (selenium + Debian's chromium/chromedriver), decisions made on the
page, then renders that honour them: exactly the retaken, re-approved and fixed segments change,
everything else is byte-identical; a pinned take survives a project-wide temperature change; a
decision saved while a render runs corrupts neither review.yaml nor the store.

The run saves a screenshot of the page to docs/images/review.png (shown in the README)."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from dia_core.files import file_sha256
from dia_core.production.options import RenderOptions
from dia_core.production.store import SegmentStore
from dia_core.review import decisions as dec
from dia_core.review.listing import open_review
from dia_core.review.server import make_server
from dia_core.script.planner import plan_project
from dia_core.script.project import load_project
from tests.review_fixture import write_project

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                reason="needs Debian's chromium and chromium-driver (make setup installs them)")


def _render(project: Path):
    from flows.produce import produce

    state = produce(project=str(project), options=RenderOptions(draft=True), return_state=True)
    assert state.is_completed(), state
    out = project.parent / "out"
    return {cid: json.loads((out / "manifests" / f"{cid}.json").read_text()) for cid in ("chapter-01", "chapter-02")}


def _chosen(seg: dict) -> str:
    return seg.get("review", {}).get("pinned", {}).get("take") or next(
        a["key"] for a in seg["attempts"] if a["attempt"] == seg["attempt"])


@pytest.fixture(scope="module")
def studio(tmp_path_factory, prefect_api):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    project = write_project(tmp_path_factory.mktemp("review") / "proj")
    first = plan_project(load_project(project)).chapters[0].segments
    # before the first render: two alternatives of segment 5, so the page has another take to approve
    dec.request_alternatives(project.parent, first[4].id, 2, "chapter-01")
    before = _render(project)
    review = open_review(project)
    server, sock, url = make_server(review)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,1250",
                "--autoplay-policy=no-user-gesture-required", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield {"project": project, "review": review, "url": url, "driver": driver, "before": before,
               "store": SegmentStore(project.parent / ".dia-studio" / "store")}
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(10)


def _wait(driver, condition, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(condition)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {condition}")


def _row(driver, i):
    return driver.find_elements("css selector", "#segments tr")[i]


def _act(driver, i, selector, done):
    driver.execute_script("document.getElementById('status').textContent = ''")
    _row(driver, i).find_element("css selector", selector).click()
    _wait(driver, f"return document.getElementById('status').textContent.startsWith({done!r})")


def test_review_page_decisions_then_render_changes_exactly_those_segments(studio):
    from selenium.webdriver.common.keys import Keys

    driver, before, store = studio["driver"], studio["before"], studio["store"]
    segs = before["chapter-01"]["segments"]
    driver.get(studio["url"])
    _wait(driver, "return document.querySelectorAll('#segments tr').length === 6")

    # play segment 1 alone: the chapter audio plays (currentTime advances)
    _row(driver, 0).find_element("css selector", "button.play-alone").click()
    t1 = _wait(driver, "const a = document.getElementById('chapter-audio'); return a.currentTime > 0.2 && a.currentTime")
    time.sleep(0.4)
    t2 = driver.execute_script("return document.getElementById('chapter-audio').currentTime")
    assert t2 > t1 > 0

    # keyboard: j/k move, a approves the take in the chapter (segment 3)
    driver.find_element("tag name", "h2").click()
    body = driver.find_element("tag name", "body")
    body.send_keys("j")
    body.send_keys("j")
    body.send_keys("j")
    body.send_keys("k")
    assert "current" in _row(driver, 2).get_attribute("class")
    driver.execute_script("document.getElementById('status').textContent = ''")
    body.send_keys("a")
    _wait(driver, "return document.getElementById('status').textContent.startsWith('approved')")

    # retake segment 2 with a note; approve alternative 2 of segment 5; fix segment 4's text
    _row(driver, 1).find_element("css selector", "input.note").send_keys("rushed, sounds flat")
    _act(driver, 1, "button.retake", "retake requested")
    alt2 = segs[4]["review"]["alternatives"][1]["key"]
    _act(driver, 4, f"button.approve[data-key='{alt2}']", "approved")
    fix = _row(driver, 3).find_element("css selector", "input.fix")
    fix.send_keys(Keys.CONTROL, "a")
    fix.send_keys("[S1] Then we wait for the early ferry.")
    _act(driver, 3, "button.fix-text", "text fixed")
    REPO.joinpath("docs", "images").mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(REPO / "docs" / "images" / "review.png"))

    d = dec.load(studio["project"].parent)
    assert d.get(segs[1]["id"]).retake == dec.Retake(1, "rushed, sounds flat")
    assert d.get(segs[4]["id"]).pin.take == alt2
    assert d.get(segs[2]["id"]).pin.take == _chosen(segs[2])
    assert d.get(segs[3]["id"]).text == "[S1] Then we wait for the early ferry."
    assert set(d.segments) == {segs[i]["id"] for i in (1, 2, 3, 4)}

    out = studio["project"].parent / "out"
    files_before = {p.name: file_sha256(p) for p in out.iterdir() if p.is_file()}
    after = _render(studio["project"])
    new = after["chapter-01"]["segments"]
    changed = {i for i in range(6) if _chosen(new[i]) != _chosen(segs[i])}
    assert changed == {1, 3, 4}                              # retaken, fixed, re-approved: nothing else
    for i in (0, 2, 5):                                      # the other takes: the same store entries
        assert file_sha256(store.get(_chosen(new[i])).audio_path) == file_sha256(store.get(_chosen(segs[i])).audio_path)
    for i in (1, 3, 4):                                      # the changed ones sound different
        assert file_sha256(store.get(_chosen(new[i])).audio_path) != file_sha256(store.get(_chosen(segs[i])).audio_path)
    assert _chosen(new[4]) == alt2 and new[1]["review"]["retaken"]["note"] == "rushed, sounds flat"
    assert new[3]["text"] == "[S1] Then we wait for the early ferry."
    assert new[3]["review"]["text_fixed"]["manuscript_text"] == segs[3]["text"]
    assert after["chapter-01"]["review"]["pinned"] == [segs[2]["id"], segs[4]["id"]]
    assert after["chapter-01"]["review"]["retaken"] == [segs[1]["id"]]
    files_after = {p.name: file_sha256(p) for p in out.iterdir() if p.is_file()}
    # the chapter's audio and captions around them changed; the rest of the delivery is byte-identical
    assert files_after["chapter-01.mp3"] != files_before["chapter-01.mp3"]
    assert "early ferry" in (out / "chapter-01.vtt").read_text()
    for name in ("chapter-02.mp3", "chapter-02.vtt"):
        assert files_after[name] == files_before[name], name
    strip = lambda m: {k: v for k, v in m.items() if k != "created_at"}  # noqa: E731
    assert strip(after["chapter-02"]) == strip(before["chapter-02"])
    studio["after"] = after


def test_pinned_takes_survive_a_temperature_change_and_a_concurrent_save(studio):
    """Temperature changes project-wide: every unpinned take is new, the pinned ones stay. Meanwhile
    the review page saves decisions and reads chapters while the render runs."""
    after, store = studio["after"], studio["store"]
    project = studio["project"]
    project.write_text(project.read_text().replace("temperature: 1.3", "temperature: 0.9"))
    driver = studio["driver"]
    csrf = driver.execute_script("return document.querySelector('meta[name=csrf-token]').content")
    base = studio["url"].split("/?")[0]
    token = studio["url"].split("token=")[1]
    headers = {"X-Review-Token": token, "X-CSRF-Token": csrf, "Origin": base}
    saved, failures, done = [], [], threading.Event()

    def review_while_rendering():
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            i = 0
            while not done.is_set() or i < 3:
                r = client.post("/api/lexicon", json={"word": f"zzq{i}", "replacement": "x"})
                (saved if r.status_code == 200 else failures).append((i, r.status_code, r.text))
                if client.get("/api/chapters/chapter-01").status_code != 200:
                    failures.append((i, "read"))
                i += 1
                time.sleep(0.05)   # a producer clicking, not a flood: leave the render its CPU

    thread = threading.Thread(target=review_while_rendering)
    thread.start()
    try:
        third = _render(project)
    finally:
        done.set()
        thread.join(30)
    assert not failures and saved
    d = dec.load(project.parent)                       # parses: never torn
    assert {f"zzq{i}" for i, *_ in saved} <= set(d.lexicon)
    old, new = after["chapter-01"]["segments"], third["chapter-01"]["segments"]
    assert third["chapter-01"]["review"]["pinned"] == [old[2]["id"], old[4]["id"]]
    for i in range(6):
        if i in (2, 4):
            assert _chosen(new[i]) == _chosen(old[i])      # pinned: the same take, temperature or not
        else:
            assert _chosen(new[i]) != _chosen(old[i])
            assert store.get(_chosen(new[i])) is not None
    # the store is whole: every entry's audio matches its recorded checksum
    keys = [p.parent.name for p in store.root.rglob("take.json")]
    assert keys and all(store.get(k) is not None for k in keys)
