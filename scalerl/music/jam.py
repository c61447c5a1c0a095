"""Live jamming: play a melody in the browser and an online chord model answers as you play.

`scalerl chords jam RUN` serves a page (static/jam.html) and a small JSON API. The page keeps time: at
each frame boundary (16th notes) it sends the melody of the frame that just ended and gets back the chord
of the frame that starts, which the model chose without hearing that frame: the online setting the model
was trained for. A session keeps the model's attention cache, so a frame costs one pass over two new
tokens, a few milliseconds on one CPU thread, far inside a 16th note.

    GET  /api/info                                       the model, its context, the default tempo
    POST /api/session {temperature?, seed?}              -> {session, seed, frame: 0, chord}
    POST /api/step {session, pitch, onset, temperature?} -> {frame, chord, fit, note_in_chord}

`pitch` is the MIDI number sounding in the frame that just ended (null for silence) and `onset` whether
it started in that frame. A chord is {token, name, pitches, change}: `change` says whether to sound it
anew (a chord onset) or let the previous one ring. A session without a seed gets a fresh random one, which
the reply names, so a jam can be replayed.

The model chooses a chord only while the melody sounds: from a beat of silence on (and before the first
note) the chord holds. Trained on songs, whose rests are short, a model left alone in a long silence
wanders through a chord every few 16th notes.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from scalerl.checks import ConfigError, first_line
from scalerl.music.metrics import chord_value, frame_fit, melody_pitch
from scalerl.music.models import choose_chord, grammar_mask
from scalerl.music.pretrain import load_chord_model
from scalerl.music.vocab import (
    CHORD_HOLD,
    CHORD_ON,
    NOTE_HOLD,
    NOTE_ON,
    NUM_CHORDS,
    NUM_PITCHES,
    SILENCE,
    chord_symbol,
    chord_voicing,
    key_signature,
)

MAX_SESSIONS = 256
"""Players at once (each session holds a small attention cache)."""
IDLE_SECONDS = 60.0
"""A session unused this long may be dropped to make room for a new player; active ones never are."""
MAX_BODY = 16 * 1024
"""Bytes a request body may have: a step is under 100."""
READ_TIMEOUT = 5.0
"""Seconds a connection may stall mid-request before it is closed (its thread freed)."""
REQUEST_SECONDS = 10.0
"""Seconds a whole request may take, however it trickles in: a client sending a byte a second (slowloris)
never stalls a read long enough for READ_TIMEOUT, so a watchdog closes it at this deadline."""
MAX_CONNECTIONS = 64
"""Connections served at once, each on a thread; one more gets a 503 at once, so threads stay bounded."""
MAX_SEED = 2**63 - 1
MAX_LISTEN_BEATS = 64
"""The longest listening period a session may ask for (16 bars of 4/4)."""
SILENT_FRAMES_TO_HOLD = 4
"""Frames of silence (a beat) after which the chord holds until the melody returns."""
KEY_FRAMES = 64
"""Frames of melody (four bars) whose notes set the key the chords are spelled in: a key change respells them
within a few bars."""
STATIC_FILES = {"/": ("jam.html", "text/html"), "/jam.js": ("jam.js", "text/javascript")}


class JamError(ValueError):
    """A bad request: answered with HTTP 400 (404 for an unknown session) and a one-line message."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def melody_token(pitch: Any, onset: Any) -> int:
    if pitch is None:
        return SILENCE
    if isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch < NUM_PITCHES:
        raise JamError(f"pitch must be a MIDI number in [0, {NUM_PITCHES - 1}] or null, got {pitch!r}")
    if not isinstance(onset, bool):
        raise JamError(f"onset must be true or false, got {onset!r}")
    return (NOTE_ON if onset else NOTE_HOLD) + pitch


def check_temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 5:
        raise JamError(f"temperature must be a number in [0, 5] (0: greedy), got {value!r}")
    return float(value)


def describe_chord(token: int, previous: int | None, accidentals: int = 0) -> dict[str, Any]:
    """What the page shows and plays of a chord token: its lead-sheet name spelled in the key of
    `accidentals`, its pitches, and whether it is a change."""
    value = chord_value(token)
    onset = CHORD_ON <= token < CHORD_ON + NUM_CHORDS
    return {"token": token, "name": "N.C." if value is None else chord_symbol(value, accidentals),
            "pitches": [] if value is None else chord_voicing(value),
            "change": value != (None if previous is None else chord_value(previous)) or onset}


class JamSession:
    """One player's jam: the model's decoding state, and the chords and melody so far."""

    def __init__(self, model: torch.nn.Module, temperature: float, seed: int, listen_frames: int = 0) -> None:
        self.model, self.temperature, self.listen_frames = model, temperature, listen_frames
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.generator = torch.Generator().manual_seed(seed)
        self.decoding = self._start()
        self.melody: list[int] = []
        self.chords = [SILENCE]  # no chord before the first note
        self.fits: list[float] = []

    def _start(self):
        """A fresh decoding of one player (the melody comes frame by frame through push)."""
        return self.model.decoding(torch.zeros(1, 0, dtype=torch.long))

    def _choose(self) -> int:
        """The model's chord for the new frame; no chord while it still listens (the jam's first
        `listen_frames`, as ReaLJam's listening period); after a beat of silence, the chord that sounds held."""
        if len(self.melody) < self.listen_frames:
            return SILENCE
        if all(note == SILENCE for note in self.melody[-SILENT_FRAMES_TO_HOLD:]):
            value = chord_value(self.chords[-1])
            return SILENCE if value is None else CHORD_HOLD + value
        legal = grammar_mask(self.model.cfg.grammar, torch.tensor(self.chords[-1:]), torch.tensor(len(self.melody)))
        return int(choose_chord(self.decoding.logits, self.temperature, self.generator, legal)[0])

    def hear(self, note: int) -> int:
        """The current frame's melody: the model moves to the next frame and returns that frame's chord."""
        if self.decoding.frames_left < 1:
            self._refresh()
        self.decoding.push(torch.tensor([self.chords[-1]]), torch.tensor([note]))
        self.melody.append(note)
        self.fits += frame_fit(self.chords[-1:], [note])
        self.chords.append(self._choose())
        return self.chords[-1]

    def _refresh(self) -> None:
        """The context is full: start again from the last half of the jam, like a crop of a longer song, fed
        in one pass (a frame at a time it took most of a second, many 16th notes)."""
        keep = self.model.cfg.max_frames // 2
        self.decoding = self._start()
        self.decoding.prefill(torch.tensor([self.chords[-keep - 1:-1]]), torch.tensor([self.melody[-keep:]]))

    def accidentals(self) -> int:
        """The key signature of the melody's last KEY_FRAMES frames, in which chords are spelled."""
        return key_signature(pitch for note in self.melody[-KEY_FRAMES:] if (pitch := melody_pitch(note)) is not None)

    def note_in_chord(self) -> float | None:
        scored = [fit for fit in self.fits if fit == fit]
        return sum(scored) / len(scored) if scored else None


class Jam:
    """The sessions of one model, safe to call from the server's threads: the shared lock guards only the
    table of sessions; each session has its own, so one player's frame never waits for another's."""

    def __init__(self, model: torch.nn.Module, run_dir: str, temperature: float, bpm: float) -> None:
        self.model, self.run_dir, self.temperature, self.bpm = model, run_dir, temperature, bpm
        self.sessions: OrderedDict[str, JamSession] = OrderedDict()
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    def info(self) -> dict[str, Any]:
        return {"run": self.run_dir, "max_frames": self.model.cfg.max_frames, "frames_per_beat": 4,
                "bpm": self.bpm, "temperature": self.temperature}

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        temperature = check_temperature(request.get("temperature", self.temperature))
        seed = request.get("seed", secrets.randbits(53))  # below 2**53: exact as the page's JavaScript number
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise JamError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")
        listen = request.get("listen_beats", 0)
        if isinstance(listen, bool) or not isinstance(listen, int) or not 0 <= listen <= MAX_LISTEN_BEATS:
            raise JamError(f"listen_beats must be a whole number of beats in [0, {MAX_LISTEN_BEATS}], got {listen!r}")
        session = JamSession(self.model, temperature, seed, listen_frames=4 * listen)
        with self.lock:
            self._make_room()
            session_id = f"s{next(self.ids)}"
            self.sessions[session_id] = session
        return {"session": session_id, "seed": seed, "frame": 0, "listen_beats": listen,
                "chord": describe_chord(session.chords[0], None)}

    def _make_room(self) -> None:
        """Drop the longest-idle session if the table is full and it has been idle IDLE_SECONDS."""
        if len(self.sessions) < MAX_SESSIONS:
            return
        oldest_id, oldest = next(iter(self.sessions.items()))  # the table is kept in order of last use
        if time.monotonic() - oldest.last_used < IDLE_SECONDS:
            raise JamError(f"the server is full ({MAX_SESSIONS} players); try again later",
                           HTTPStatus.SERVICE_UNAVAILABLE)
        del self.sessions[oldest_id]

    def step(self, request: dict[str, Any]) -> dict[str, Any]:
        note = melody_token(request.get("pitch"), request.get("onset", False))
        session_id = request.get("session")
        if not isinstance(session_id, str):
            raise JamError(f"session must be the string POST /api/session returned, got {session_id!r}")
        temperature = check_temperature(request["temperature"]) if "temperature" in request else None
        with self.lock:
            session = self.sessions.get(session_id)
            if session is None:
                raise JamError(f"no session {session_id!r}; start one with POST /api/session", HTTPStatus.NOT_FOUND)
            self.sessions.move_to_end(session_id)
            session.last_used = time.monotonic()
        with session.lock:
            if temperature is not None:
                session.temperature = temperature
            chord = session.hear(note)
            return {"frame": len(session.melody),
                    "chord": describe_chord(chord, session.chords[-2], session.accidentals()),
                    "fit": session.fits[-1] if session.fits[-1] == session.fits[-1] else None,
                    "note_in_chord": session.note_in_chord()}


def read_json_object(handler: BaseHTTPRequestHandler) -> dict[str, Any]:
    """The request's body as a JSON object, or a JamError that says what is wrong with it."""
    length = handler.headers.get("Content-Length", "0")
    if not (length.isascii() and length.isdigit() and len(length) <= 9):
        raise JamError(f"Content-Length must be a byte count, got {length[:20]!r}")
    if int(length) > MAX_BODY:
        raise JamError(f"the request body is {int(length):,} bytes; the limit is {MAX_BODY:,}",
                       HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    body = handler.rfile.read(int(length))
    if len(body) < int(length):
        raise JamError(f"the request body ended after {len(body)} of {int(length)} bytes")
    try:
        request = json.loads(body or b"{}")
    except json.JSONDecodeError as error:
        raise JamError(f"the request body is not JSON: {error}") from None
    except UnicodeDecodeError:
        raise JamError("the request body is not JSON: it is not UTF-8 text") from None
    except RecursionError:
        raise JamError("the request body is nested too deeply") from None
    except ValueError:  # an integer past Python's 4,300-digit conversion limit
        raise JamError("the request body holds a number too long to read") from None
    if not isinstance(request, dict):
        raise JamError("the request body must be a JSON object")
    return request


def make_handler(jam: Jam) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT  # a stalled client gets its connection closed, not a thread forever

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/api/info":
                self.reply(HTTPStatus.OK, jam.info())
            elif self.path in STATIC_FILES:
                name, kind = STATIC_FILES[self.path]
                self.send_body(HTTPStatus.OK, (resources.files("scalerl.music") / "static" / name).read_bytes(), kind)
            else:
                self.reply(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            routes = {"/api/session": jam.start, "/api/step": jam.step}
            if self.path not in routes:
                self.reply(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {self.path}"})
                return
            try:
                self.reply(HTTPStatus.OK, routes[self.path](read_json_object(self)))
            except JamError as error:
                self.close_connection = True  # the rest of a refused body is not read
                self.reply(error.status, {"error": str(error)})

        def reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            self.send_body(status, json.dumps(body).encode(), "application/json")

        def send_body(self, status: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the page calls /api/step every 16th note."""

    return Handler


BUSY_REPLY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
              b"Connection: close\r\n\r\n{\"error\": \"the server is busy; try again in a moment\"}")


class JamServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` of them, each closed `request_seconds` after it
    arrived whatever it is doing (one request per connection: HTTP/1.0)."""

    request_queue_size = 256  # simultaneous connects wait in the backlog instead of being reset
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int = MAX_CONNECTIONS, request_seconds: float = REQUEST_SECONDS) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(max_connections)
        self.request_seconds = request_seconds
        self.deadlines: dict[Any, float] = {}
        self.deadlines_lock = threading.Lock()
        self.closed = threading.Event()
        self.refused = 0
        """Connections turned away with a 503 because every slot was taken."""
        threading.Thread(target=self.close_late_connections, daemon=True, name="jam-watchdog").start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            try:
                request.sendall(BUSY_REPLY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self.deadlines_lock:
            self.deadlines[request] = time.monotonic() + self.request_seconds
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.forget(request)

    def forget(self, request: Any) -> None:
        with self.deadlines_lock:
            if self.deadlines.pop(request, None) is not None:
                self.slots.release()

    def close_late_connections(self) -> None:
        import socket

        while not self.closed.wait(0.2):
            now = time.monotonic()
            with self.deadlines_lock:
                late = [request for request, deadline in self.deadlines.items() if deadline < now]
            for request in late:
                try:
                    request.shutdown(socket.SHUT_RDWR)  # the handler's next read or write ends its thread
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (closed by its client, or by the watchdog) is not worth a word; anything
        else gets one line on stderr, not a traceback."""
        import sys

        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            print(f"jam: error serving {client_address[0]}: {type(error).__name__}: {first_line(error)}",
                  file=sys.stderr)

    def server_close(self) -> None:
        self.closed.set()
        super().server_close()


def make_server(model: torch.nn.Module, run_dir: str = "", host: str = "127.0.0.1", port: int = 8765,
                temperature: float = 1.0, bpm: float = 90.0, max_connections: int = MAX_CONNECTIONS,
                request_seconds: float = REQUEST_SECONDS) -> ThreadingHTTPServer:
    """The jam server, bound but not yet serving (port 0 picks a free port: see server.server_address)."""
    return JamServer((host, port), make_handler(Jam(model, run_dir, temperature, bpm)), max_connections,
                     request_seconds)


def serve(run_dir: str | Path | None, host: str, port: int, temperature: float, bpm: float, threads: int = 1) -> None:
    """Serve the jam page with the model in run_dir (None: the model that ships) until Ctrl-C."""
    cfg, model = load_chord_model(run_dir)
    run_dir = run_dir or "the model that ships with scalerl"
    if cfg.model != "online":
        raise ConfigError(f"{run_dir} holds a {cfg.model} model; "
                          "jamming needs an online one (it cannot hear the future)")
    try:
        check_temperature(temperature)
    except JamError as error:
        raise ConfigError(f"--{error}") from None
    torch.set_num_threads(threads)
    try:
        server = make_server(model, str(run_dir), host, port, temperature, bpm)
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    print(f"jamming with {run_dir} on http://{host}:{server.server_address[1]}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
