// Drives the jam page's logic (scalerl/music/static/jam.js) against a running jam server, as the page
// would, and prints what it sent and received as JSON for tests/test_music_jam.py to check.
import { pathToFileURL } from "node:url";

const [jamJs, baseUrl] = process.argv.slice(2);
const { DEMO_TUNE, JamClient, MelodyInput, ReplyTimes, barBeat, frameMs, labelRows, parseMelody, pitchName,
  rollRange } = await import(pathToFileURL(jamJs));

const input = new MelodyInput();
const actions = [
  () => input.press(60), () => {}, () => input.press(64), () => input.release(64), () => input.release(60),
  () => { input.press(67); input.release(67); }, () => {},
];
const client = new JamClient(baseUrl);
const first = await client.start(0);
const sent = [], chords = [first.chord.token];
for (const act of actions) {
  act();
  const frame = input.endFrame();
  sent.push(frame);
  chords.push((await client.step(frame)).chord.token);
}
let error = null;
try {
  await client.step({ pitch: 500, onset: true });
} catch (caught) {
  error = caught.message;
}
console.log(JSON.stringify({
  sent, chords, error, demoFrames: DEMO_TUNE.length, demoStart: DEMO_TUNE.slice(0, 5),
  rest: parseMelody("r:2 Bb3:1"), frameMsAt120: frameMs(120),
  rollNarrow: rollRange([60, 62, null]), rollWide: rollRange([40, 90]), rollEmpty: rollRange([null]),
  labelRows: labelRows([{ x: 0, width: 50 }, { x: 20, width: 50 }, { x: 40, width: 50 }, { x: 60, width: 50 },
                        { x: 200, width: 10 }]),
  replies: (() => { const times = new ReplyTimes(); [5, 9, 200, 7].forEach((t) => times.add(t, 125)); return [times.median(), times.late]; })(),
  pitchNames: [pitchName(60), pitchName(70), pitchName(21)],
  positions: [1, 4, 15, 16, 17, 36].map((frame) => barBeat(frame)),
  waltz: [0, 4, 8, 12, 24].map((frame) => barBeat(frame, 3)),
}));
