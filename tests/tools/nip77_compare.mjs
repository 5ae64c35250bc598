// Compares sluice's set reconciliation with nostr-tools's NIP-77 module
// (an independent port of the negentropy reference), over seeded random
// cases. sluice is driven through tests/tools/negentropy_harness.c, which
// speaks the reference project's conformance-harness line protocol.
//
//   node tests/tools/nip77_compare.mjs <path to negentropy_harness>
//
// Environment: SEED replays a run (the seed is printed first), CASES sets
// the number of cases (default 240). Exits 1 on the first mismatch, with
// what differed and a JSON file holding the case (the two sets and the
// messages) for a reproducer.
//
// Each case makes two sets A and B from a common part and items only in A
// or only in B (0..300 each, in clustered runs or scattered), 0..5000 items
// in all, with timestamps all 0, from a small range (many ties) or from a
// wide one (below 2^31: nostr-tools's varints are 32-bit). Then:
//
//   a. Byte identity, with no frame limit reached (0 for the harness, 1e9
//      for nostr-tools): A's first message from both must be equal. Then the
//      harness as initiator on A runs against the harness as responder on B,
//      and at every step nostr-tools's Negentropy on the same incoming
//      message must give the same bytes: as initiator (every message; have
//      and need must be the same sets), and as responder when the message
//      holds no IdList range (nostr-tools answers an IdList as an
//      initiator, which is the only place the roles differ).
//   b. Full runs, have and need checked against the true difference, with
//      frame limits on either side: nostr-tools's initiator on A against
//      the harness as responder on B, and the harness as initiator on A
//      against respond() of nip77_lib.mjs (a responder built on
//      nostr-tools's storage and codec) on B.
//
// In a., the harness's responder answers are also compared byte for byte
// with respond() on B, IdLists included. One harness process per role and
// frame limit serves the whole run (the harness's reset command loads each
// case's set), since starting one costs more than a case under ASan.
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { MODE_IDLIST, Negentropy, fromHex, makeStorage, parseMessage, respond, rng, toHex } from './nip77_lib.mjs';

const HARNESS = process.argv[2];
if (!HARNESS) {
	process.stderr.write('usage: node nip77_compare.mjs <negentropy_harness>\n');
	process.exit(2);
}
const SEED = process.env.SEED !== undefined ? Number(process.env.SEED) : randomInt(2 ** 31);
const CASES = process.env.CASES !== undefined ? Number(process.env.CASES) : 240;
if (!Number.isInteger(SEED) || SEED < 0 || !Number.isInteger(CASES) || CASES < 1) {
	process.stderr.write('nip77_compare: SEED and CASES must be non-negative integers\n');
	process.exit(2);
}
console.log(`nip77_compare: seed ${SEED} (replay with SEED=${SEED}), ${CASES} cases`);

const NO_LIMIT_NT = 1e9; // nostr-tools has no "no limit"; this one is never reached
const MAX_ROUNDS = 500;
// Frame limits of the full runs, [initiator, responder]; case i uses entry i % length.
const NT_INIT_LIMITS = [[4096, 0], [60000, 4096], [NO_LIMIT_NT, 4096], [4096, 4096], [60000, 60000], [NO_LIMIT_NT, 0]];
const HARNESS_INIT_LIMITS = [[0, 4096], [4096, NO_LIMIT_NT], [4096, 4096], [60000, 4096], [0, 60000], [4096, 60000]];

// -------------------------------------------------------------- random

const rand = rng(SEED);
const below = (n) => Math.floor(rand() * n);
const pick = (list) => list[below(list.length)];

function randomId() {
	const b = Buffer.alloc(32);
	for (let i = 0; i < 32; i += 4) b.writeUInt32LE(below(2 ** 32), i);
	return b.toString('hex');
}

function itemCmp(a, b) {
	if (a.ts !== b.ts) return a.ts - b.ts;
	return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

// ---------------------------------------------------------------- cases

// Some positions of `taken` (length n) not yet taken: count of them in
// runs (clustered) or one by one (scattered); marks them.
function choose(taken, count, clustered) {
	const n = taken.length;
	const chosen = [];
	let free = taken.filter((t) => !t).length;
	count = Math.min(count, free);
	while (chosen.length < count) {
		let pos = below(n);
		let run = clustered ? 1 + below(count - chosen.length) : 1;
		while (run > 0 && chosen.length < count) {
			if (!taken[pos]) {
				taken[pos] = true;
				chosen.push(pos);
				run--;
				free--;
			}
			pos = (pos + 1) % n;
		}
	}
	return chosen;
}

function makeCase(index) {
	const shape = pick(['tiny', 'small', 'medium', 'large', 'large']);
	const common = { tiny: below(40), small: below(300), medium: below(1500), large: 1500 + below(3200) }[shape];
	const diffSize = () => pick([0, below(4), below(40), below(301), below(301)]);
	let onlyA = diffSize();
	let onlyB = diffSize();
	if (index === 0) onlyA = onlyB = 0; // both empty
	const tsMode = pick(['zero', 'zero', 'ties', 'ties', 'wide']);
	const tsRange = tsMode === 'zero' ? 1 : tsMode === 'ties' ? pick([2, 3, 10, 50]) : 2 ** 31 - 1;
	const layout = pick(['clustered', 'scattered', 'mixed']);
	const total = common + onlyA + onlyB;
	const universe = [];
	for (let i = 0; i < total; i++) universe.push({ ts: below(tsRange), id: randomId() });
	universe.sort(itemCmp);
	const taken = new Array(total).fill(false);
	const clusteredA = layout === 'clustered' || (layout === 'mixed' && rand() < 0.5);
	const clusteredB = layout === 'clustered' || (layout === 'mixed' && !clusteredA);
	const inA = new Set(choose(taken, onlyA, clusteredA));
	const inB = new Set(choose(taken, onlyB, clusteredB));
	const a = universe.filter((_, i) => !inB.has(i));
	const b = universe.filter((_, i) => !inA.has(i));
	return {
		index,
		description: `${shape} common=${common} onlyA=${onlyA} onlyB=${onlyB} ts=${tsMode}/${tsRange} ${layout}`,
		a,
		b,
		have: [...inA].map((i) => universe[i].id).sort(),
		need: [...inB].map((i) => universe[i].id).sort(),
	};
}

// ------------------------------------------------------------- failures

let current = null; // { kase, log: [] } of the case being run

function fail(what) {
	let file = '';
	if (current) {
		file = join(process.env.NIP77_FAIL_DIR || tmpdir(), `nip77-compare-${SEED}-${current.kase.index}.json`);
		writeFileSync(file, JSON.stringify({ seed: SEED, case: current.kase, log: current.log }, null, 1));
	}
	process.stderr.write(`nip77_compare: FAIL (seed ${SEED}` + (current ? `, case ${current.kase.index}: ${current.kase.description}` : '') + `)\n  ${what}\n` + (file ? `  the case and its messages: ${file}\n` : ''));
	process.exit(1);
}

function note(entry) {
	if (current) current.log.push(entry);
}

function sameSet(got, want) {
	const g = [...new Set(got)].sort();
	return g.length === want.length && g.every((x, i) => x === want[i]);
}

function setDiff(got, want) {
	const g = new Set(got);
	const w = new Set(want);
	const extra = [...g].filter((x) => !w.has(x));
	const missing = [...w].filter((x) => !g.has(x));
	return `${extra.length} extra [${extra.slice(0, 3).join(', ')}], ${missing.length} missing [${missing.slice(0, 3).join(', ')}]`;
}

// -------------------------------------------------------------- harness

// One negentropy_harness process with one frame limit. It is kept for the
// whole run and given each case's set with load() (the harness's reset
// command), since starting a process costs more than a case under ASan.
class Harness {
	constructor(frameLimit, name) {
		this.name = `${name} (FRAMESIZELIMIT=${frameLimit})`;
		this.proc = spawn(HARNESS, [], {
			env: { ...process.env, FRAMESIZELIMIT: String(frameLimit) },
			stdio: ['pipe', 'pipe', 'inherit'],
		});
		this.lines = [];
		this.waiting = null;
		this.dead = null; // how it exited, once it has
		this.exited = new Promise((resolve) =>
			this.proc.on('close', (code, signal) => {
				this.dead = signal || String(code);
				resolve({ code, signal });
			}),
		);
		this.proc.on('error', (err) => fail(`${this.name}: cannot run ${HARNESS}: ${err.message}`));
		this.proc.stdin.on('error', () => {}); // a dead harness is reported by the read that waits for it
		createInterface({ input: this.proc.stdout }).on('line', (line) => {
			if (this.waiting) {
				const w = this.waiting;
				this.waiting = null;
				w(line);
			} else this.lines.push(line);
		});
		this.exited.then(({ code, signal }) => {
			if (this.waiting) fail(`${this.name} exited (${signal || code}) while an answer was expected`);
		});
	}

	// Forget the previous set and role; hold items.
	load(items) {
		const text = 'reset\n' + items.map((it) => `item,${it.ts},${it.id}\n`).join('') + 'seal\n';
		this.proc.stdin.write(text);
	}

	line() {
		if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
		if (this.dead) fail(`${this.name} exited (${this.dead}) while an answer was expected`);
		return new Promise((resolve) => {
			this.waiting = resolve;
		});
	}

	async expectMsg(line) {
		if (line.startsWith('error,')) fail(`${this.name}: ${line}`);
		if (!line.startsWith('msg,')) fail(`${this.name}: expected msg,<hex>, got ${line.slice(0, 100)}`);
		return line.slice(4);
	}

	async initiate() {
		this.proc.stdin.write('initiate\n');
		return this.expectMsg(await this.line());
	}

	// As responder: the answer (hex).
	async respond(msg) {
		this.proc.stdin.write(`msg,${msg}\n`);
		return this.expectMsg(await this.line());
	}

	// As initiator: { have, need, msg (hex or null when done) }.
	async next(msg) {
		this.proc.stdin.write(`msg,${msg}\n`);
		const have = [];
		const need = [];
		for (;;) {
			const line = await this.line();
			if (line.startsWith('have,')) have.push(line.slice(5));
			else if (line.startsWith('need,')) need.push(line.slice(5));
			else if (line === 'done') return { have, need, msg: null };
			else return { have, need, msg: await this.expectMsg(line) };
		}
	}

	async close() {
		this.proc.stdin.end();
		const { code, signal } = await this.exited;
		if (code !== 0) fail(`${this.name} exited with ${signal || code} at the end`);
	}
}

// ---------------------------------------------------------------- counts

const counts = {
	cases: 0,
	items: 0,
	initiate: 0, // first messages compared
	responder: 0, // responder answers compared byte for byte
	responderIdList: 0, // incoming messages with an IdList (roles differ; not compared with Negentropy)
	responderJs: 0, // responder answers compared byte for byte with respond()
	initiator: 0, // initiator answers compared byte for byte (done included)
	reported: 0, // have/need ids compared
	bytesCompared: 0,
	ntVsHarness: 0, // full runs, nostr-tools initiator against the harness responder
	harnessVsJs: 0, // full runs, harness initiator against respond()
	limitedRuns: 0, // full runs with a frame limit under 1e9 on some side
	fullFrames: 0, // messages of those runs over half their side's limit
	rounds: 0,
	differences: 0, // have + need ids checked in full runs
	processes: 0, // harness processes started
};

function hasIdList(hex) {
	return parseMessage(fromHex(hex)).ranges.some((r) => r.mode === MODE_IDLIST);
}

// ------------------------------------------------------------------ runs

// a. The harness (A initiator, B responder, no limit) against nostr-tools,
// step by step.
async function identity(kase, hA, hB, ntA, ntB) {
	const negA = new Negentropy(ntA, NO_LIMIT_NT);
	const negB = new Negentropy(ntB, NO_LIMIT_NT);
	let msg = await hA.initiate();
	const ntInit = negA.initiate();
	note({ step: 'initiate', harness: msg, nostr: ntInit });
	if (msg !== ntInit) fail(`initiate differs:\n  sluice ${msg}\n  nostr  ${ntInit}`);
	counts.initiate++;
	counts.bytesCompared += msg.length / 2;
	const have = [];
	const need = [];
	for (let round = 1; ; round++) {
		if (round > MAX_ROUNDS) fail(`no end after ${MAX_ROUNDS} rounds`);
		const answer = await hB.respond(msg);
		note({ step: `respond ${round}`, incoming: msg, harness: answer });
		// respond() (nostr-tools's storage and codec, nip77_lib.mjs) answers
		// an IdList as a responder: compared on every message.
		let js;
		try {
			js = toHex(respond(ntB, NO_LIMIT_NT, fromHex(msg)));
		} catch (err) {
			fail(`respond() refused ${msg}: ${err.message}`);
		}
		note({ step: `respond ${round}`, respond: js });
		if (js !== answer) fail(`responder answers differ (round ${round}) to ${msg}:\n  sluice    ${answer}\n  respond() ${js}`);
		counts.responderJs++;
		if (hasIdList(msg)) {
			counts.responderIdList++;
		} else {
			const nt = negB.reconcile(msg) ?? '61';
			note({ step: `respond ${round}`, nostr: nt });
			if (nt !== answer) fail(`responder answers differ (round ${round}) to ${msg}:\n  sluice ${answer}\n  nostr  ${nt}`);
			counts.responder++;
			counts.bytesCompared += answer.length / 2;
		}
		const got = await hA.next(answer);
		const ntHave = [];
		const ntNeed = [];
		const nt = negA.reconcile(answer, (id) => ntHave.push(id), (id) => ntNeed.push(id));
		note({ step: `next ${round}`, incoming: answer, harness: got, nostr: { msg: nt, have: ntHave, need: ntNeed } });
		if (got.msg !== nt)
			fail(`initiator answers differ (round ${round}) to ${answer}:\n  sluice ${got.msg ?? 'done'}\n  nostr  ${nt ?? 'done'}`);
		if (!sameSet(got.have, [...new Set(ntHave)].sort()) || got.have.length !== new Set(got.have).size)
			fail(`have differs in round ${round}: ${setDiff(got.have, ntHave)} (sluice against nostr-tools)`);
		if (!sameSet(got.need, [...new Set(ntNeed)].sort()) || got.need.length !== new Set(got.need).size)
			fail(`need differs in round ${round}: ${setDiff(got.need, ntNeed)} (sluice against nostr-tools)`);
		counts.initiator++;
		counts.reported += got.have.length + got.need.length;
		counts.bytesCompared += (got.msg ?? '').length / 2;
		have.push(...got.have);
		need.push(...got.need);
		if (got.msg === null) break;
		msg = got.msg;
	}
	if (!sameSet(have, kase.have)) fail(`harness against harness: have is wrong: ${setDiff(have, kase.have)}`);
	if (!sameSet(need, kase.need)) fail(`harness against harness: need is wrong: ${setDiff(need, kase.need)}`);
}

function countFrame(hex, limit) {
	if (limit > 0 && limit < NO_LIMIT_NT && hex.length / 2 > limit / 2) counts.fullFrames++;
}

function checkDiff(what, have, need, kase) {
	if (!sameSet(have, kase.have)) fail(`${what}: have is wrong: ${setDiff(have, kase.have)}`);
	if (!sameSet(need, kase.need)) fail(`${what}: need is wrong: ${setDiff(need, kase.need)}`);
	counts.differences += kase.have.length + kase.need.length;
}

// b1. nostr-tools initiator on A against the harness responder on B.
async function ntAgainstHarness(kase, ntA, hB, initLimit, respLimit) {
	const what = `nostr-tools initiator (limit ${initLimit}) against the harness responder (limit ${respLimit})`;
	const neg = new Negentropy(ntA, initLimit);
	const have = [];
	const need = [];
	let msg = neg.initiate();
	for (let round = 1; msg !== null; round++) {
		if (round > MAX_ROUNDS) fail(`${what}: no end after ${MAX_ROUNDS} rounds`);
		countFrame(msg, initLimit);
		const answer = await hB.respond(msg);
		note({ step: `b1 round ${round}`, incoming: msg, harness: answer });
		countFrame(answer, respLimit);
		msg = neg.reconcile(answer, (id) => have.push(id), (id) => need.push(id));
		counts.rounds++;
	}
	checkDiff(what, have, need, kase);
	counts.ntVsHarness++;
	if (initLimit < NO_LIMIT_NT || respLimit > 0) counts.limitedRuns++;
}

// b2. The harness initiator on A against respond() on B.
async function harnessAgainstJs(kase, hA, ntB, initLimit, respLimit) {
	const what = `harness initiator (limit ${initLimit}) against the nostr-tools-based responder (limit ${respLimit})`;
	const have = [];
	const need = [];
	let msg = await hA.initiate();
	for (let round = 1; msg !== null; round++) {
		if (round > MAX_ROUNDS) fail(`${what}: no end after ${MAX_ROUNDS} rounds`);
		countFrame(msg, initLimit);
		let answer;
		try {
			answer = toHex(respond(ntB, respLimit, fromHex(msg)));
		} catch (err) {
			fail(`${what}: the responder refused ${msg}: ${err.message}`);
		}
		if (answer.length / 2 > respLimit) fail(`${what}: respond() passed its own limit`);
		countFrame(answer, respLimit);
		const got = await hA.next(answer);
		note({ step: `b2 round ${round}`, incoming: answer, harness: got });
		have.push(...got.have);
		need.push(...got.need);
		msg = got.msg;
		counts.rounds++;
	}
	checkDiff(what, have, need, kase);
	counts.harnessVsJs++;
	if (initLimit > 0 || respLimit < NO_LIMIT_NT) counts.limitedRuns++;
}

// The harness processes, by role (A initiates, B responds) and frame limit.
const harnesses = new Map();
let loaded = new Set(); // those given the current case's set

function harness(role, frameLimit, items) {
	const key = `${role}/${frameLimit}`;
	let h = harnesses.get(key);
	if (!h) {
		h = new Harness(frameLimit, `harness ${role}`);
		harnesses.set(key, h);
		counts.processes++;
	}
	if (!loaded.has(h)) {
		h.load(items);
		loaded.add(h);
	}
	return h;
}

async function runCase(index) {
	const kase = makeCase(index);
	current = { kase, log: [] };
	loaded = new Set();
	const ntA = makeStorage(kase.a);
	const ntB = makeStorage(kase.b);
	const [b1Init, b1Resp] = NT_INIT_LIMITS[index % NT_INIT_LIMITS.length];
	const [b2Init, b2Resp] = HARNESS_INIT_LIMITS[index % HARNESS_INIT_LIMITS.length];

	// Harness processes by role and limit: the unlimited ones serve a. and,
	// when a run of b. has no limit on the harness side, that run too.
	const hA = harness('A', 0, kase.a);
	const hB = harness('B', 0, kase.b);
	const hA2 = harness('A', b2Init, kase.a);
	const hB2 = harness('B', b1Resp, kase.b);

	await identity(kase, hA, hB, ntA, ntB);
	await ntAgainstHarness(kase, ntA, hB2, b1Init, b1Resp);
	await harnessAgainstJs(kase, hA2, ntB, b2Init, b2Resp);
	counts.cases++;
	counts.items += kase.a.length + kase.b.length;
	current = null;
}

const started = Date.now();
for (let i = 0; i < CASES; i++) await runCase(i);
for (const h of harnesses.values()) await h.close();
const seconds = ((Date.now() - started) / 1000).toFixed(1);

const c = counts;
console.log(
	`nip77_compare: ${c.cases} cases (${c.items} items), byte identity: ${c.initiate} first messages, ` +
		`${c.responder} responder answers (and ${c.responderIdList} to messages with an IdList: ${c.responderJs} compared with respond()), ` +
		`${c.initiator} initiator answers, ${c.reported} have/need ids, ${c.bytesCompared} bytes; ` +
		`full runs: ${c.ntVsHarness} nostr-tools->sluice, ${c.harnessVsJs} sluice->nostr-tools responder ` +
		`(${c.limitedRuns} with frame limits, ${c.fullFrames} frames over half their limit), ` +
		`${c.rounds} rounds, ${c.differences} differences found; ${c.processes} harness processes; ${seconds} s`,
);
for (const [name, value] of Object.entries({
	cases: c.cases,
	'first messages': c.initiate,
	'responder answers': c.responder,
	'responder answers compared with respond()': c.responderJs,
	'initiator answers': c.initiator,
	'have/need ids': c.reported,
	'nostr-tools->sluice runs': c.ntVsHarness,
	'sluice->nostr-tools runs': c.harnessVsJs,
	'runs with frame limits': c.limitedRuns,
	'frames over half their limit': c.fullFrames,
	'differences found': c.differences,
})) {
	if (!(value > 0)) fail(`nothing was compared: ${name} is ${value}`);
}
