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

from scalerl.music.metrics import chord_value
from scalerl.music.models import ChordModelConfig, OnlineChordModel, chord_logits, generate
from scalerl.music.vocab import CHORD_HOLD, NOTE_HOLD, NOTE_ON, NUM_CHORDS, SILENCE, is_chord

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
    assert status == 200 and reply["frame"] == 0 and reply["chord"]["name"] == "N.C."  # no chord before a note
    session, chords = reply["session"], [reply["chord"]["token"]]
    for frame, token in enumerate(melody):
        pitch, onset = (token - NOTE_ON, True) if token < NOTE_HOLD else (token - NOTE_HOLD, False)
        status, reply = call(f"{url}/api/step", {"session": session, "pitch": pitch, "onset": onset})
        assert status == 200 and reply["frame"] == frame + 1
        chords.append(reply["chord"]["token"])
    assert all(is_chord(token) for token in chords[1:])
    # Within the context, the live chords are the greedy offline accompaniment, frame for frame.
    assert chords[:16] == generate(model, torch.tensor([melody[:16]]), primer=torch.tensor([[SILENCE]]))[0].tolist()
    # Past it, the session starts again from the last 8 frames: chord 17 is the greedy choice after them.
    with torch.no_grad():
        logits = model(torch.tensor([chords[8:18]]), torch.tensor([melody[8:18]]))[0, 9]
    assert chords[17] == chord_logits(logits).argmax().item()


def test_silence_holds_the_chord_and_each_session_draws_its_own_seed(jam):
    """A model left in silence wanders through chords (an untrained one most of all): from a beat of silence
    on, the chord holds until the melody returns. A session without a seed gets a fresh one, and naming it
    replays the session."""
    _, url = jam

    def play(notes: list[int | None], **start) -> tuple[int, list[int]]:
        reply = call(f"{url}/api/session", {"temperature": 1.0, **start})[1]
        tokens = [reply["chord"]["token"]]
        for frame, pitch in enumerate(notes):
            step = {"session": reply["session"], "pitch": pitch, "onset": pitch is not None and frame % 2 == 0}
            tokens.append(call(f"{url}/api/step", step)[1]["chord"]["token"])
        return reply["seed"], tokens

    notes = [60, 60, 64, 64, 67, 67, None, None, None, None, None, None, None, None, None, None, 62, 62, 65, 65]
    seed, tokens = play(notes)
    values = [chord_value(token) for token in tokens]
    assert tokens[0] == SILENCE and all(is_chord(token) for token in tokens[1:7])
    # the 4th silent frame is the last the model chooses after; the chord then holds through the silence
    assert len(set(values[10:17])) == 1 and all(CHORD_HOLD <= token < CHORD_HOLD + NUM_CHORDS
                                                for token in tokens[11:17])
    seeds = {play(notes[:2])[0] for _ in range(4)}
    assert len(seeds) == 4, "each session draws its own seed"
    assert play(notes, seed=seed) == (seed, tokens), "a named seed replays the session"


def test_jam_serves_the_page_and_rejects_bad_requests_in_one_line(jam):
    _, url = jam
    status, page = call(f"{url}/")
    assert status == 200 and 'from "/jam.js"' in page
    assert call(f"{url}/jam.js")[0] == 200
    assert call(f"{url}/api/info")[1]["max_frames"] == 16
    session = call(f"{url}/api/session", {"seed": 3})[1]["session"]
    assert call(f"{url}/api/step", {"session": "nobody", "pitch": 60, "onset": True}) == (
        404, {"error": "no session 'nobody'; start one with POST /api/session"})
    bad = [({"session": session, "pitch": 128, "onset": True},
            "pitch must be a MIDI number in [0, 127] or null, got 128"),
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
                              {"pitch": 60, "onset": True}, {"pitch": None, "onset": False},
                              {"pitch": 67, "onset": True},
                              {"pitch": None, "onset": False}]
    melody = [SILENCE if f["pitch"] is None else (NOTE_ON if f["onset"] else NOTE_HOLD) + f["pitch"]
              for f in result["sent"]]
    assert result["chords"][:7] == generate(model, torch.tensor([melody]), primer=torch.tensor([[SILENCE]]))[0].tolist()
    assert result["error"] == "pitch must be a MIDI number in [0, 127] or null, got 500"
    assert result["demoFrames"] == 256 and result["demoStart"][:5] == [{"pitch": 64, "onset": True}] + [
        {"pitch": 64, "onset": False}] * 3 + [{"pitch": 64, "onset": True}]
    assert result["rest"] == [{"pitch": None, "onset": False}] * 2 + [{"pitch": 58, "onset": True}]
    assert result["frameMsAt120"] == 125
    # the roll spans the notes in view with 3 semitones to spare and at least two octaves
    assert result["rollNarrow"] == {"low": 49, "high": 73} and result["rollWide"] == {"low": 37, "high": 93}
    assert result["rollEmpty"]["high"] - result["rollEmpty"]["low"] == 24
    # close chord labels stack on rows instead of hiding each other; a row is free again once its label ends
    assert result["labelRows"] == [0, 1, 2, 0, 0]
    assert result["replies"] == [9, 1]  # median reply, replies later than their 125 ms frame
    assert result["pitchNames"] == ["C4", "Bb4", "A0"]
    assert result["positions"] == ["1:1", "1:2", "1:4", "2:1", "2:1", "3:2"]  # bar:beat, as a musician counts
    assert result["waltz"] == ["1:1", "1:2", "1:3", "2:1", "3:1"]  # in 3/4


def test_chords_are_named_as_a_lead_sheet_names_them_in_the_key_being_played(jam):
    """Bb blues (Bb Db Eb E F Ab) is read in Bb minor's five flats: no C# under it; standard symbols (Bbm7,
    Cm7b5, not Bbmin7, Chdim7); a melody in sharps spells the same chord with sharps."""
    from scalerl.music.vocab import chord_id, chord_symbol, key_signature

    blues = [70, 73, 75, 76, 77, 80, 70, 73]
    assert key_signature(blues) == -5 and key_signature([66, 68, 70, 71, 73, 75, 77]) == 6
    assert key_signature([60, 62, 64, 65, 67, 69, 71]) == 0
    assert [chord_symbol(chord_id(1, "maj"), -4), chord_symbol(chord_id(1, "maj"), 2)] == ["Db", "C#"]
    assert [chord_symbol(chord_id(10, "min7"), -2), chord_symbol(chord_id(0, "hdim7")),
            chord_symbol(chord_id(9, "min")), chord_symbol(chord_id(7, "7"))] == ["Bbm7", "Cm7b5", "Am", "G7"]
    model, url = jam
    _, started = call(f"{url}/api/session", {"seed": 1})
    for step, pitch in enumerate(blues * 3):
        _, reply = call(f"{url}/api/step", {"session": started["session"], "pitch": pitch, "onset": True})
        assert "min" not in reply["chord"]["name"] and "hdim" not in reply["chord"]["name"], reply["chord"]
        if step >= 4:  # once the blues has begun to sound (Bb Db Eb E alone fit E major as well)
            assert "#" not in reply["chord"]["name"], reply["chord"]


def test_jam_command_needs_an_online_model_and_a_valid_temperature(tmp_path, capsys):
    from scalerl.cli import main

    assert main(["chords", "jam", str(tmp_path / "missing")]) == 2
    assert main(["chords", "jam", str(tmp_path), "--bpm", "1000"]) == 2
    assert main(["chords", "data", "--synthetic", "20", "-o", str(tmp_path / "data")]) == 0
    assert main(["chords", "pretrain", "--model", "teacher", "--data", str(tmp_path / "data"), "--steps", "1",
                 "--net.dim", "16", "--net.layers", "1", "--net.heads", "2",
                 "--run-dir", str(tmp_path / "teacher")]) == 0
    assert main(["chords", "jam", str(tmp_path / "teacher")]) == 2
    assert main(["chords", "pretrain", "--model", "online", "--data", str(tmp_path / "data"), "--steps", "1",
                 "--net.dim", "16", "--net.layers", "1", "--net.heads", "2",
                 "--run-dir", str(tmp_path / "online")]) == 0
    capsys.readouterr()
    assert main(["chords", "jam", str(tmp_path / "online"), "--temperature", "99"]) == 2
    assert capsys.readouterr().err.strip() == ("scalerl: error: argument --temperature: must be in [0, 5] (got 99) "
                                               "(see scalerl chords jam --help)")
    finetune = ["chords", "finetune", "--policy", str(tmp_path / "online"), "--rewards", str(tmp_path / "teacher"),
                "--beta", "0", "--data", str(tmp_path / "data"), "--steps", "1", "--run-dir", str(tmp_path / "ft")]
    assert main(finetune) == 2  # a teacher given as a reward model: one line, and no run directory left behind
    assert capsys.readouterr().err.strip() == (f"scalerl: error: {tmp_path / 'teacher'} holds a pretrained teacher "
                                               "chord model, not a reward run")
    assert not (tmp_path / "ft").exists()


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 10.0) -> tuple[int | None, str]:
    """Send bytes as they are (for requests urllib refuses to make) and read the reply: (status, body),
    status None if the server closed the connection without one."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(head.encode() + b"\r\n\r\n" + body)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    if not reply:
        return None, ""
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


def test_hostile_requests_get_a_400_with_one_line_and_the_server_keeps_answering(jam):
    _, url = jam
    session = call(f"{url}/api/session", {})[1]["session"]
    for body, status, message in [
        ({"seed": 18446744073709551616}, 400, "seed must be an integer in [0, 2**63 - 1]"),
        ({"seed": -1}, 400, "seed must be an integer in [0, 2**63 - 1]"),
    ]:
        assert call(f"{url}/api/session", body) == (status, {"error": f"{message}, got {body['seed']}"})
    for value in ([1], {"a": 1}, 3, None):
        status, reply = call(f"{url}/api/step", {"session": value, "pitch": 60, "onset": True})
        assert status == 400 and reply["error"].startswith("session must be the string POST /api/session returned")
    deep = ("[" * 5000 + "]" * 5000).encode()
    assert raw_request(url, f"POST /api/step HTTP/1.1\r\nHost: x\r\nContent-Length: {len(deep)}", deep) == (
        400, '{"error": "the request body is nested too deeply"}')
    assert raw_request(url, "POST /api/step HTTP/1.1\r\nHost: x\r\nContent-Length: abc", b"{}") == (
        400, '{"error": "Content-Length must be a byte count, got \'abc\'"}')
    big = b"{" + b" " * 10_000_000 + b"}"
    status, reply = raw_request(url, f"POST /api/step HTTP/1.1\r\nHost: x\r\nContent-Length: {len(big)}", big[:1000])
    assert status == 413 and "the limit is 16,384" in reply
    assert call(f"{url}/api/step", {"session": session, "pitch": 60, "onset": True})[0] == 200


def test_a_stalled_request_is_cut_after_the_read_timeout(monkeypatch):
    """A client that promises a body and sends two bytes holds its thread only READ_TIMEOUT seconds."""
    from scalerl.music import jam as jam_module

    monkeypatch.setattr(jam_module, "READ_TIMEOUT", 1.0)
    model = OnlineChordModel(ChordModelConfig(dim=16, layers=1, heads=2, dropout=0.0, max_frames=8)).eval()
    server = jam_module.make_server(model, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    status, _ = raw_request(url, "POST /api/step HTTP/1.1\r\nHost: x\r\nContent-Length: 1000", b"{}")
    assert status is None  # closed without an answer (a server that waited for ever would time raw_request out)
    assert call(f"{url}/api/info")[0] == 200
    server.shutdown()
    server.server_close()


def test_sessions_are_dropped_only_when_idle(monkeypatch):
    import time

    from scalerl.music import jam as jam_module

    monkeypatch.setattr(jam_module, "MAX_SESSIONS", 2)
    monkeypatch.setattr(jam_module, "IDLE_SECONDS", 0.5)
    model = OnlineChordModel(ChordModelConfig(dim=16, layers=1, heads=2, dropout=0.0, max_frames=8)).eval()
    jam = jam_module.Jam(model, "tiny", 1.0, 90.0)
    first, second = jam.start({})["session"], jam.start({})["session"]
    with pytest.raises(jam_module.JamError, match=r"the server is full \(2 players\)"):
        jam.start({})
    time.sleep(0.6)
    jam.step({"session": first, "pitch": 60, "onset": True})  # the first player plays on: the second is idle
    third = jam.start({})["session"]
    assert set(jam.sessions) == {first, third} and second not in jam.sessions


def test_jam_server_fuzz_every_malformed_request_gets_a_json_error(jam):
    """A few hundred malformed requests (wrong types, out-of-range numbers, unknown sessions, broken JSON,
    wrong lengths): each gets an HTTP error with a JSON one-line message, never a dropped connection, and
    the server plays on afterwards."""
    import random

    _, url = jam
    session = call(f"{url}/api/session", {})[1]["session"]
    rng = random.Random(0)
    values = [None, True, -1, 0.5, 128, 2**70, float("nan"), "x", "", [], {}, [60], {"pitch": 60}, "s1" * 50]
    bodies: list[bytes] = []
    for _ in range(150):
        request = {key: rng.choice(values) for key in rng.sample(["session", "pitch", "onset", "temperature", "seed"],
                                                                  rng.randint(1, 5))}
        if rng.random() < 0.5:
            request["session"] = session
        bodies.append(json.dumps(request).encode())
    for _ in range(50):
        text = bytearray(json.dumps({"session": session, "pitch": 60, "onset": True}).encode())
        for _ in range(rng.randint(1, 4)):
            text[rng.randrange(len(text))] = rng.randrange(256)
        bodies.append(bytes(text))
    answered = 0
    for index, body in enumerate(bodies):
        path = "/api/session" if index % 5 == 0 else "/api/step"
        length = str(len(body)) if index % 7 else rng.choice(["-5", "1e3", "", " 12"])
        status, reply = raw_request(url, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}", body)
        assert status is not None, body
        if status != 200:
            assert status in (400, 404, 413) and list(json.loads(reply)) == ["error"], (body, reply)
            assert "\n" not in json.loads(reply)["error"]
            answered += 1
    assert answered > 100
    assert call(f"{url}/api/step", {"session": session, "pitch": 62, "onset": True})[0] == 200


def test_one_players_model_step_does_not_hold_up_the_others():
    """Each session has its own lock and the shared one guards only the table: while one player's session is
    busy (its lock held, as during a context refresh), other players' frames, through refreshes of their own,
    are answered; the busy one's frame waits for its own session only. (How fast a refresh is belongs to
    benchmarks/chords_speed.py.)"""
    from scalerl.music.jam import Jam

    torch.manual_seed(0)
    model = OnlineChordModel(ChordModelConfig(dim=32, layers=2, heads=4, dropout=0.0, max_frames=16)).eval()
    jam = Jam(model, "tiny", 1.0, 90.0)
    busy, free = (jam.start({"seed": k})["session"] for k in range(2))
    answered: dict[str, int] = {}

    def play(session: str, frames: int) -> None:
        for frame in range(frames):  # past max_frames: refreshes of the context
            jam.step({"session": session, "pitch": 60 + frame % 5, "onset": True})
        answered[session] = frames

    with jam.sessions[busy].lock:
        waiting = threading.Thread(target=play, args=(busy, 1))
        waiting.start()
        other = threading.Thread(target=play, args=(free, 40))
        other.start()
        other.join(timeout=120)
        assert answered.get(free) == 40 and busy not in answered
    waiting.join(timeout=120)
    assert answered.get(busy) == 1

def test_chords_commands_refuse_an_rl_run_in_one_line(tmp_path, capsys):
    from scalerl import train
    from scalerl.cli import main

    run = tmp_path / "dqn"
    train(steps=200, run_dir=str(run), progress="off", eval_episodes=1, algo={"learning_starts": 100})
    capsys.readouterr()
    for command in (["jam", str(run)], ["pretrain", "--resume", str(run)],
                    ["accompany", str(run), str(tmp_path / "x.abc"), "-o", str(tmp_path / "x.mid")],
                    ["finetune", "--policy", str(run), "--rewards", str(run), "--beta", "0"]):
        assert main(["chords", *command]) == 2
        assert capsys.readouterr().err.strip() == (f"scalerl: error: {run} is a scalerl train run (agent dqn), "
                                                   "not a chords model run")


def test_a_jam_with_the_beats_grammar_changes_chords_only_on_beats():
    from scalerl.music.jam import JamSession
    from scalerl.music.metrics import invalid_holds, sounding_chords

    torch.manual_seed(0)
    model = OnlineChordModel(ChordModelConfig(dim=32, layers=1, heads=2, max_frames=16, grammar="beats")).eval()
    session = JamSession(model, temperature=1.0, seed=0)
    for note in torch.randint(NOTE_ON, NOTE_ON + 128, (40,)).tolist():  # past the context: refreshes too
        session.hear(note)
    starts = [event.start for event in sounding_chords(session.chords)]
    assert len(starts) > 3 and all(start % 4 == 0 for start in starts), starts
    assert invalid_holds(session.chords) == 0


def test_odd_lengths_and_numbers_past_pythons_digit_limit_get_a_json_error(jam):
    """A Content-Length of a superscript two (str.isdigit says yes, int says no) or of 5,000 digits, and a
    5,000-digit seed or pitch (past int's 4,300-digit limit), each get a 400 with one JSON line."""
    _, url = jam
    for length in ("\u00b2", "9" * 5000):
        status, reply = raw_request(url, f"POST /api/step HTTP/1.1\r\nHost: x\r\nContent-Length: {length}", b"{}")
        assert status == 400 and json.loads(reply)["error"].startswith("Content-Length must be a byte count")
    huge = "9" * 5000
    for path, body in (("/api/session", f'{{"seed": {huge}}}'), ("/api/step", f'{{"session": "s1", "pitch": {huge}}}')):
        data = body.encode()
        status, reply = raw_request(url, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}", data)
        assert (status, json.loads(reply)) == (400, {"error": "the request body holds a number too long to read"})
    assert call(f"{url}/api/info")[0] == 200


def test_a_slowloris_holds_neither_a_thread_nor_the_server_for_long():
    """Twenty clients that send a header byte every 0.2 s (each read arrives well inside the read timeout):
    at most `max_connections` threads serve them, the rest get a 503 at once, and every connection is closed
    at the request deadline, after which the server answers again. On 127.0.0.1, bounded in count and time."""
    import socket
    import time

    from scalerl.music.jam import make_server

    model = OnlineChordModel(ChordModelConfig(dim=16, layers=1, heads=2, dropout=0.0, max_frames=8)).eval()
    server = make_server(model, port=0, max_connections=4, request_seconds=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    before = threading.active_count()
    clients = [socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) for _ in range(20)]
    closed, most_threads = set(), 0
    request = b"POST /api/step HTTP/1.1\r\nHost: x\r\n"
    for index in range(40):  # 8 s at most, 5 times the deadline
        for number, client in enumerate(clients):
            if number in closed:
                continue
            try:
                client.sendall(request[index % len(request):][:1])
                client.setblocking(False)
                client.recv(4096)  # a 503, or the end of a connection closed at its deadline
                closed.add(number)
            except BlockingIOError:
                client.setblocking(True)
            except OSError:
                closed.add(number)
        most_threads = max(most_threads, threading.active_count() - before)
        if len(closed) == len(clients):
            break
        time.sleep(0.2)
    for client in clients:
        client.close()
    assert len(closed) == len(clients)  # every trickling connection was ended by the server
    assert server.refused >= len(clients) - 8  # most past the limit were turned away at once (a slot a deadline
    # freed may take a late one on a slow machine)
    assert most_threads <= 4 + 1  # the connection threads and the watchdog
    assert call(f"{url}/api/info")[0] == 200
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_accompany_plays_a_song_as_the_page_does_past_the_context(temperature):
    """`chords accompany` goes frame by frame through the page's own session: for the same melody and seed it
    gives the chords the server answers, past the model's context (no cold restart where it fills), and no
    chord before the melody's first note."""
    from scalerl.music.accompany import accompany_song
    from scalerl.music.data import Event, Song, frames_to_events, song_tokens
    from scalerl.music.jam import Jam
    from scalerl.music.vocab import CHORD_ON, tokens_part

    torch.manual_seed(0)
    model = OnlineChordModel(ChordModelConfig(dim=32, layers=2, heads=4, dropout=0.0, max_frames=16)).eval()
    notes = tuple(Event(start, start + 2, 60 + (start // 2) % 7) for start in range(4, 60, 2))  # past 16 frames
    song = Song("walk", 64, notes, ())
    accompanied = accompany_song(model, song, temperature, seed=11)
    jam = Jam(model, "tiny", temperature, 90.0)
    session = jam.start({"seed": 11, "temperature": temperature})["session"]
    _, melody = song_tokens(song)
    answered = [jam.sessions[session].chords[0]]
    for token in melody[:-1]:
        onset = NOTE_ON <= token < NOTE_HOLD
        pitch = None if token == SILENCE else token - (NOTE_ON if onset else NOTE_HOLD)
        answered.append(jam.step({"session": session, "pitch": pitch, "onset": onset})["chord"]["token"])
    assert accompanied.chords == frames_to_events(tokens_part(answered, CHORD_ON, CHORD_HOLD, NUM_CHORDS))
    assert accompanied.chords and accompanied.chords[0].start >= notes[0].start


def test_the_model_listens_first_for_the_beats_a_session_asks(jam):
    """With listen_beats 2 the first 8 frames get no chord (the model hears them); then it plays, and a bad
    listening period is one line."""
    model, url = jam
    _, started = call(f"{url}/api/session", {"seed": 3, "listen_beats": 2})
    assert started["listen_beats"] == 2
    names = []
    for pitch in [60, 62, 64, 65, 67, 65, 64, 62] * 3:
        _, reply = call(f"{url}/api/step", {"session": started["session"], "pitch": pitch, "onset": True})
        names.append(reply["chord"]["name"])
    assert names[:7] == ["N.C."] * 7 and all(name != "N.C." for name in names[7:]), names
    for bad in (-1, 65, 2.5, True, "8"):
        status, reply = call(f"{url}/api/session", {"listen_beats": bad})
        assert status == 400 and reply["error"].startswith("listen_beats must be a whole number of beats in [0, 64]")
