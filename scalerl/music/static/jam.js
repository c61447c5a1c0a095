// The jam page's logic without the page: the melody quantized to frames, the client of the jam API,
// and the demo tune. No DOM and no audio here, so Node can run it in the tests.

export const FRAMES_PER_BEAT = 4;

export function frameMs(bpm) {
  return 60000 / bpm / FRAMES_PER_BEAT;
}

// A monophonic keyboard read once per frame. The frame that ended holds the last key pressed during it
// (an onset), or else the key still held (a hold, or an onset if a different note sounded before, as
// when a key is released back onto one held under it), or else silence.
export class MelodyInput {
  constructor() {
    this.held = [];
    this.pressed = null;
    this.previous = null;
  }

  press(pitch) {
    this.held = this.held.filter((p) => p !== pitch);
    this.held.push(pitch);
    this.pressed = pitch;
  }

  release(pitch) {
    this.held = this.held.filter((p) => p !== pitch);
  }

  sounding() {
    return this.held.length ? this.held[this.held.length - 1] : null;
  }

  endFrame() {
    let frame;
    if (this.pressed !== null) {
      frame = { pitch: this.pressed, onset: true };
    } else if (this.held.length) {
      const pitch = this.sounding();
      frame = { pitch, onset: pitch !== this.previous };
    } else {
      frame = { pitch: null, onset: false };
    }
    this.pressed = null;
    this.previous = frame.pitch;
    return frame;
  }
}

export class JamClient {
  constructor(baseUrl = "", fetchImpl = globalThis.fetch.bind(globalThis)) {
    this.baseUrl = baseUrl;
    this.fetch = fetchImpl;
    this.session = null;
  }

  async request(path, body) {
    const options = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await this.fetch(this.baseUrl + path, options);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error);
    return data;
  }

  info() {
    return this.request("/api/info");
  }

  // Without a seed the server draws a fresh one (the reply names it, to replay a session).
  async start(temperature, seed, listenBeats = 0) {
    const body = seed === undefined ? { temperature, listen_beats: listenBeats }
      : { temperature, seed, listen_beats: listenBeats };
    const reply = await this.request("/api/session", body);
    this.session = reply.session;
    return reply;
  }

  // Send the melody of the frame that just ended; the reply holds the chord of the frame that starts.
  step(frame, temperature) {
    const body = { session: this.session, pitch: frame.pitch, onset: frame.onset };
    if (temperature !== undefined) body.temperature = temperature;
    return this.request("/api/step", body);
  }
}

const PITCH_CLASSES = { C: 0, D: 2, E: 4, F: 5, G: 7, A: 9, B: 11 };

// "E4:4 F#4:2 r:2" -> frames: a note name with octave (or r for a rest) and its length in frames.
export function parseMelody(text) {
  const frames = [];
  for (const item of text.trim().split(/\s+/)) {
    const match = /^([A-G])(#|b)?(-?\d)|^(r)/.exec(item.split(":")[0]);
    const length = Number(item.split(":")[1]);
    if (!match || !Number.isInteger(length) || length < 1) throw new Error(`bad melody item ${item}`);
    const pitch = match[4] ? null
      : 12 * (Number(match[3]) + 1) + PITCH_CLASSES[match[1]] + ({ "#": 1, b: -1 }[match[2]] ?? 0);
    for (let i = 0; i < length; i += 1) frames.push({ pitch, onset: pitch !== null && i === 0 });
  }
  return frames;
}

export const DEMO_TUNE = parseMelody(`
  E4:4 E4:4 F4:4 G4:4 G4:4 F4:4 E4:4 D4:4 C4:4 C4:4 D4:4 E4:4 E4:6 D4:2 D4:8
  E4:4 E4:4 F4:4 G4:4 G4:4 F4:4 E4:4 D4:4 C4:4 C4:4 D4:4 E4:4 D4:6 C4:2 C4:8
  D4:4 D4:4 E4:4 C4:4 D4:4 E4:2 F4:2 E4:4 C4:4 D4:4 E4:2 F4:2 E4:4 D4:4 C4:4 D4:4 G3:8
  E4:4 E4:4 F4:4 G4:4 G4:4 F4:4 E4:4 D4:4 C4:4 C4:4 D4:4 E4:4 D4:6 C4:2 C4:8`);

// Computer keys as a piano: the home row plays white keys from C, the row above the black keys.
export const KEY_OFFSETS = {
  a: 0, w: 1, s: 2, e: 3, d: 4, f: 5, t: 6, g: 7, y: 8, h: 9, u: 10, j: 11, k: 12, o: 13, l: 14, p: 15, ";": 16,
};

// The pitch range the piano roll shows: the notes in view and the chords' voicings with a few semitones
// to spare, at least two octaves, widened evenly, so the roll follows the player up and down the keyboard.
export function rollRange(pitches, span = 24, margin = 3) {
  const sounding = pitches.filter((pitch) => pitch !== null && pitch !== undefined);
  if (!sounding.length) return { low: 54, high: 54 + span };
  let low = Math.min(...sounding) - margin, high = Math.max(...sounding) + margin;
  if (high - low < span) {
    const extra = span - (high - low);
    low -= Math.floor(extra / 2);
    high += Math.ceil(extra / 2);
  }
  return { low, high };
}

// Rows for chord labels along the roll: each label goes on the first row whose last label ended before
// it starts, so close changes stack instead of hiding one another; with every row taken, the row that
// frees first.
export function labelRows(labels, rows = 3) {
  const ends = new Array(rows).fill(-Infinity);
  return labels.map(({ x, width }) => {
    let row = ends.findIndex((end) => end <= x);
    if (row < 0) row = ends.indexOf(Math.min(...ends));
    ends[row] = x + width;
    return row;
  });
}

// The latency of the model's replies, as the page shows it: the median and the share of replies that came
// after their frame had ended (a late chord is heard late).
export class ReplyTimes {
  constructor() {
    this.times = [];
    this.late = 0;
  }

  add(milliseconds, frameMs) {
    this.times.push(milliseconds);
    if (milliseconds > frameMs) this.late += 1;
  }

  median() {
    if (!this.times.length) return null;
    const sorted = [...this.times].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }
}

export function pitchName(pitch) {
  return ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"][pitch % 12] + (Math.floor(pitch / 12) - 1);
}

// "bar:beat" of a frame (4 frames a beat, 4 beats a bar), both counted from 1 as a musician counts them.
export function barBeat(frame, beatsPerBar = 4) {
  const beat = Math.floor(frame / 4);
  return `${Math.floor(beat / beatsPerBar) + 1}:${(beat % beatsPerBar) + 1}`;
}
