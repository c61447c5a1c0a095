"""The live jam: the server answers frame by frame exactly as offline generation would, keeps going past
the model's context, rejects bad requests with one line, and the page's own logic drives it (in Node)."""

import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from scalerl.music.models import ChordModelConfig, OnlineChordModel, chord_logits, generate
from scalerl.music.vocab import NOTE_HOLD, NOTE_ON, SILENCE, is_chord

pytest.importorskip("music21", reason="pip install 'scalerl[music]'")

JAM_JS = Path(__file__).parents[1] / "scalerl" / "music" / "static" / "jam.js"


@pytest.fixture(scope="module")
def jam():
    """A server on a free port with a small untrained online model of 16 frames' context."""
    from scalerl.music.jam import make_server

    torch.manual_seed(0)
    model = OnlineChordModel(ChordModelConfig(dim=32, layers=2, heads=4, dropout=0.0, max_frames=16)).eval()
    server = make_server(model, "tiny", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield model, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def call(url: str, body: dict | str | None = None) -> tuple[int, dict | str]:
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data)) as response:
            status, text, kind = response.status, response.read().decode(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, text, kind = error.code, error.read().decode(), error.headers["Content-Type"]
    return status, json.loads(text) if kind.startswith("application/json") else text


def test_jam_answers_each_frame_as_offline_generation_does_and_plays_past_the_context(jam):
    model, url = jam
    torch.manual_seed(1)
    melody = torch.randint(NOTE_ON, NOTE_HOLD + 128, (40,)).tolist()
    status, reply = call(f"{url}/api/session", {"temperature": 0})
    assert status == 200 and reply["frame"] == 0
    session, chords = reply["session"], [reply["chord"]["token"]]
    for frame, token in enumerate(melody):
        pitch, onset = (token - NOTE_ON, True) if token < NOTE_HOLD else (token - NOTE_HOLD, False)
        status, reply = call(f"{url}/api/step", {"session": session, "pitch": pitch, "onset": onset})
        assert status == 200 and reply["frame"] == frame + 1
        chords.append(reply["chord"]["token"])
    assert all(is_chord(token) for token in chords)
    # Within the context, the live chords are the greedy offline accompaniment, frame for frame.
    assert chords[:16] == generate(model, torch.tensor([melody[:16]]))[0].tolist()
    # Past it, the session starts again from the last 8 frames: chord 17 is the greedy choice after them.
    with torch.no_grad():
        logits = model(torch.tensor([chords[8:18]]), torch.tensor([melody[8:18]]))[0, 9]
    assert chords[17] == chord_logits(logits).argmax().item()


def test_jam_serves_the_page_and_rejects_bad_requests_in_one_line(jam):
    _, url = jam
    status, page = call(f"{url}/")
    assert status == 200 and 'from "/jam.js"' in page
    assert call(f"{url}/jam.js")[0] == 200
    assert call(f"{url}/api/info")[1]["max_frames"] == 16
    session = call(f"{url}/api/session", {"seed": 3})[1]["session"]
    assert call(f"{url}/api/step", {"session": "nobody", "pitch": 60, "onset": True}) == (
        404, {"error": "no session 'nobody'; start one with POST /api/session"})
    bad = [({"session": session, "pitch": 128, "onset": True}, "pitch must be a MIDI number in [0, 127] or null, got 128"),
           ({"session": session, "pitch": 60, "onset": "yes"}, "onset must be true or false, got 'yes'"),
           ({"session": session, "pitch": None, "temperature": -1}, "temperature must be a number in [0, 5]"),
           ("[1, 2]", "the request body must be a JSON object"),
           ("{not json", "the request body is not JSON")]
    for body, message in bad:
        status, reply = call(f"{url}/api/step", body)
        assert status == 400 and reply["error"].startswith(message), reply
    assert call(f"{url}/api/step", {"session": session, "pitch": None})[1]["fit"] is None  # silence is not scored
    assert call(f"{url}/nowhere")[0] == 404


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's logic")
def test_the_pages_logic_quantizes_the_keyboard_and_plays_with_the_server(jam):
    model, url = jam
    result = json.loads(subprocess.run(["node", str(Path(__file__).parent / "js" / "jam_client.mjs"), str(JAM_JS), url],
                                       capture_output=True, text=True, check=True, timeout=60).stdout)
    # press C; hold it; press E over it; release E (back onto the held C: it sounds anew); release C;
    # a quick G pressed and released within one frame; nothing.
    assert result["sent"] == [{"pitch": 60, "onset": True}, {"pitch": 60, "onset": False}, {"pitch": 64, "onset": True},
                              {"pitch": 60, "onset": True}, {"pitch": None, "onset": False}, {"pitch": 67, "onset": True},
                              {"pitch": None, "onset": False}]
    melody = [SILENCE if f["pitch"] is None else (NOTE_ON if f["onset"] else NOTE_HOLD) + f["pitch"] for f in result["sent"]]
    assert result["chords"][:7] == generate(model, torch.tensor([melody]))[0].tolist()
    assert result["error"] == "pitch must be a MIDI number in [0, 127] or null, got 500"
    assert result["demoFrames"] == 256 and result["demoStart"][:5] == [{"pitch": 64, "onset": True}] + [
        {"pitch": 64, "onset": False}] * 3 + [{"pitch": 64, "onset": True}]
    assert result["rest"] == [{"pitch": None, "onset": False}] * 2 + [{"pitch": 58, "onset": True}]
    assert result["frameMsAt120"] == 125


def test_jam_command_needs_an_online_model(tmp_path):
    from scalerl.cli import main

    assert main(["chords", "jam", str(tmp_path / "missing")]) == 2
    assert main(["chords", "jam", str(tmp_path), "--bpm", "1000"]) == 2
    assert main(["chords", "data", "--synthetic", "20", "-o", str(tmp_path / "data")]) == 0
    assert main(["chords", "pretrain", "--model", "teacher", "--data", str(tmp_path / "data"), "--steps", "1",
                 "--net.dim", "16", "--net.layers", "1", "--net.heads", "2", "--run-dir", str(tmp_path / "teacher")]) == 0
    assert main(["chords", "jam", str(tmp_path / "teacher")]) == 2
