"""The jam page in a real browser (headless Chromium driven by Playwright): the demo plays in time with
sound, typed keys start and play a jam whatever control has focus (but not while typing a number), the
controls show their state, the layout holds from 760 px to a wide screen, and nothing logs an error."""

import os
import shutil
import threading

import pytest

from scalerl.music.models import ChordModelConfig, OnlineChordModel
from scalerl.music.vocab import NOTE_ON

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser test's driver)")
CHROMIUM = os.environ.get("SCALERL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="no Chromium installed (apt install chromium, or set SCALERL_CHROMIUM)")


@pytest.fixture(scope="module")
def served():
    """A jam server on a free loopback port with the model that ships; yields (jam, url)."""
    from scalerl.music.jam import Jam, JamServer, make_handler
    from scalerl.music.pretrain import load_chord_model

    jam = Jam(load_chord_model()[1], "the model that ships", 1.0, 240.0)
    server = JamServer(("127.0.0.1", 0), make_handler(jam))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield jam, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def open_page(browser, url: str, width: int = 1280):
    """A fresh page; every console error and uncaught exception is collected in page.errors."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.errors = []
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("window.jamStats !== undefined")
    return page


def stats(page) -> dict:
    return page.evaluate("({...window.jamStats})")


def test_the_demo_plays_in_time_with_sound_and_draws_the_roll(served, browser, tmp_path):
    _, url = served
    page = open_page(browser, url)
    page.check("#demo")
    page.click("#start")
    page.wait_for_function("window.jamStats.frames >= 64", timeout=20_000)  # 64 frames at 240 bpm: 4 s
    page.click("#jump")
    assert page.get_attribute("#jump", "aria-pressed") == "true" and page.inner_text("#jump") == "tritone jump: on"
    page.wait_for_function("window.jamStats.frames >= 96", timeout=20_000)
    page.click("#start")  # stop
    result = stats(page)
    assert result["audio"] == "running", result
    assert result["chords"] == result["frames"] >= 96
    # Reply latency (median, late replies) is speed, not behaviour: benchmarks/chords_speed.py measures it.
    assert page.inner_text("#chord") not in ("", "–")
    screenshot = page.screenshot(path=str(tmp_path / "jam.png"), full_page=True)
    assert len(screenshot) > 20_000  # the drawn roll, not a blank page
    assert page.errors == []


def test_start_counts_in_one_bar_of_the_meter_and_a_key_starts_at_once(served, browser):
    """From the Start button the jam begins after a bar of clicks (3 beats in 3/4), showing the count; the
    first frame comes after it. A key starts the jam at once: the player has already begun."""
    _, url = served
    page = open_page(browser, url)
    page.fill("#bpm", "60")  # a beat a second: the count-in lasts 3 s
    page.select_option("#meter", "3")
    page.click("#start")
    page.wait_for_function("document.getElementById('chord').textContent.startsWith('count-in')", timeout=10_000)
    assert stats(page)["countIn"] == 3 and stats(page)["frames"] == 0
    assert page.inner_text("#chord").endswith("/3")
    page.wait_for_function("window.jamStats.frames >= 2", timeout=20_000)
    page.click("#start")  # stop
    page.keyboard.down("a")
    page.wait_for_function("window.jamStats.frames >= 1", timeout=10_000)
    assert stats(page)["countIn"] == 0
    page.keyboard.up("a")
    page.click("#start")
    assert page.errors == []
    page.close()


def test_typed_keys_start_the_jam_from_any_control_but_not_from_a_number_field(served, browser):
    jam, url = served
    page = open_page(browser, url)
    page.focus("#bpm")
    page.keyboard.type("12")  # typing a tempo plays nothing and starts nothing
    assert stats(page)["frames"] == 0 and page.inner_text("#start") == "Start"
    page.fill("#bpm", "240")
    page.focus("#temperature")
    sessions = set(jam.sessions)
    page.keyboard.down("a")  # C4 with the slider focused: the jam starts and hears it
    page.wait_for_function("window.jamStats.frames >= 8", timeout=10_000)
    page.keyboard.up("a")
    page.focus("#click")
    page.keyboard.press("d")  # E4 with a checkbox focused
    page.wait_for_function("window.jamStats.frames >= 16", timeout=10_000)
    page.click("#start")
    (session,) = set(jam.sessions) - sessions
    melody = jam.sessions[session].melody
    assert NOTE_ON + 60 in melody and NOTE_ON + 64 in melody, melody
    assert stats(page)["seed"] is not None and page.errors == []


@pytest.mark.parametrize("width", [760, 1920])
def test_the_layout_holds_from_760_px_to_a_wide_screen(served, browser, width):
    _, url = served
    page = open_page(browser, url, width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
    toolbar = page.locator(".toolbar").bounding_box()
    for control in ("#start", "#demo", "#bpm", "#temperature", "#jump", "#click", "#meter", "#seed", "#listen"):
        box = page.locator(control).bounding_box()
        assert toolbar["x"] <= box["x"] and box["x"] + box["width"] <= toolbar["x"] + toolbar["width"], control
    canvas, keyboard = page.locator("#roll").bounding_box(), page.locator("#keyboard").bounding_box()
    assert canvas["width"] == pytest.approx(keyboard["width"], abs=2) and canvas["height"] >= 260
    assert page.errors == []


def test_the_seed_the_page_shows_replays_the_same_chords(served, browser):
    """Play the demo, read the seed off the page, type it in and play again: the same chords, frame for frame;
    a seed that is not a whole number is refused on the page."""
    _, url = served
    page = open_page(browser, url)
    page.fill("#bpm", "240")
    page.fill("#listen", "0")
    page.check("#demo")
    takes = []
    for typed in ("", None):
        if typed is None:
            page.fill("#seed", page.inner_text("#seed-shown"))
        page.evaluate("window.jamStats.chordNames = []")  # the page empties it on start: never read the last take's
        page.click("#start")
        page.wait_for_function("window.jamStats.chordNames.length >= 24", timeout=20_000)
        page.click("#start")
        takes.append(stats(page)["chordNames"][:24])
    assert takes[0] == takes[1] and len(set(takes[0])) > 1, takes
    page.fill("#seed", "12x")
    page.click("#start")
    page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=10_000)
    assert page.inner_text("#error").startswith("seed must be a whole number below 2^53")
    assert page.errors == []


def test_the_page_says_why_when_its_session_is_gone(browser):
    """A page whose session the server forgot (a restart) shows the error and stops, instead of failing silently."""
    from scalerl.music.jam import Jam, JamServer, make_handler

    jam = Jam(OnlineChordModel(ChordModelConfig(dim=32, layers=1, dropout=0.0)).eval(), "tiny", 1.0, 240.0)
    server = JamServer(("127.0.0.1", 0), make_handler(jam))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = open_page(browser, f"http://127.0.0.1:{server.server_address[1]}/")
    page.check("#demo")
    page.click("#start")
    page.wait_for_function("window.jamStats.frames >= 4", timeout=10_000)
    jam.sessions.clear()  # as after a server restart: the session is unknown
    page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=10_000)
    assert "no session" in page.inner_text("#error") and page.inner_text("#start") == "Start"
    server.shutdown()
    server.server_close()


def test_a_key_held_through_the_tritone_jump_does_not_stick(served, browser):
    """Hold a key, turn the tritone jump on, release it: the note that started (C4, not its shifted F#4) is
    released, so the model hears silence after the release instead of a note that sounds for ever."""
    from scalerl.music.vocab import NOTE_HOLD, SILENCE

    jam, url = served
    page = open_page(browser, url)
    page.fill("#bpm", "240")
    page.focus("#temperature")  # typed keys play from any control but a number field
    sessions = set(jam.sessions)
    page.keyboard.down("a")
    page.wait_for_function("window.jamStats.frames >= 8", timeout=10_000)
    page.click("#jump")
    page.keyboard.up("a")
    released = stats(page)["frames"]
    page.wait_for_function(f"window.jamStats.frames >= {released + 8}", timeout=10_000)
    page.click("#start")
    (session,) = set(jam.sessions) - sessions
    melody = jam.sessions[session].melody
    assert melody[-4:] == [SILENCE] * 4, melody
    assert NOTE_HOLD + 60 in melody and page.errors == []
    assert 0 <= stats(page)["seed"] < 2**53  # the server's seed is exact as the page's JavaScript number
