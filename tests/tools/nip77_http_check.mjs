// Checks a node's set reconciliation endpoints over HTTP (docs/protocol.md,
// "Set reconciliation"): nip77_client.mjs against it, with have and need
// compared to the true difference of the two sets, the items endpoint's
// answers, and bad requests. tests/cli/reconcile_interop.sh runs it against
// nip77_peer.mjs.
//
//   node nip77_http_check.mjs gen <items.json> <seed>
//        writes a node's set: 3000 small values, the documented `a/b` =
//        "hello", and 4 values of 6 MiB (so an items frame with values is cut)
//   node nip77_http_check.mjs check <base-url> <namespace> <items.json> <workdir> <seed>
//        the node at base-url holds items.json in namespace; the client's
//        sets go to workdir. Prints what it checked; exits 1 on the first
//        failure.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Negentropy, loadItems, makeStorage, rng } from './nip77_lib.mjs';

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'nip77_client.mjs');
const SMALL = 3000;
const BIG = 4;
const BIG_SIZE = 6 << 20;
const ITEMS_BUDGET = 16 << 20;
const RECONCILE_BODY_MAX = 1 << 20;
const ITEMS_MAX_IDS = 65536;
const ITEMS_BODY_MAX = 6 + 32 * ITEMS_MAX_IDS;
const CLIENT_FRAME_LIMIT = 60000; // nip77_client.mjs's default

// The documented example: asking for the item of `a/b` with values.
const VECTOR_ID = 'e933f0de89a75bb2058379eb361a83827c59c846797123e01bb45d4ff62b96cb';
const VECTOR_FRAME = [
	'01', '00000001', VECTOR_ID, '03', '612f62', '05',
	'2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', '68656c6c6f',
	'00000000', '00000000',
].join('');

function fail(what) {
	process.stderr.write(`nip77_http_check: FAIL: ${what}\n`);
	process.exit(1);
}


function randomBytes(rand, n) {
	const b = Buffer.alloc(n);
	for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
	return b;
}

const sha256 = (...parts) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest();
const itemId = (key, value) => sha256(Buffer.from(key), Buffer.from([0]), sha256(value)).toString('hex');
// An entry of an items file, and an item as loadItems() gives it.
const entry = (key, value) => ({ key, value_b64: Buffer.from(value).toString('base64') });
const item = (key, value) => ({ key, value, ts: 0, id: itemId(key, value) });
// A body for a message: JSON as it is, anything else as hex.
const text = (buf) => (buf[0] === 0x7b ? buf.toString('utf8') : `(hex) ${buf.toString('hex')}`).slice(0, 200);

// ------------------------------------------------------------------- gen

function gen(path, seed) {
	const rand = rng(seed);
	const list = [entry('a/b', 'hello')];
	for (let i = 0; i < SMALL; i++) {
		const key = `s/${String(i).padStart(5, '0')}`;
		list.push(entry(key, randomBytes(rand, Math.floor(rand() * 200))));
	}
	for (let i = 0; i < BIG; i++) {
		// Distinct and cheap to make: a random head, then a fill byte.
		const value = Buffer.alloc(BIG_SIZE, i + 1);
		randomBytes(rand, 64).copy(value);
		list.push(entry(`big/${i}`, value));
	}
	writeFileSync(path, JSON.stringify(list));
}

// ------------------------------------------------------------------ HTTP

let base, ns;
const counts = { runs: 0, ids: 0, frames: 0, answered: 0, errors: 0 };

async function post(path, body, method = 'POST') {
	const res = await fetch(`${base}/api/v0/ns/${path}`, {
		method,
		body: method === 'POST' ? body : undefined,
		signal: AbortSignal.timeout(60000),
	});
	const answer = Buffer.from(await res.arrayBuffer());
	return { status: res.status, type: res.headers.get('content-type') ?? '', body: answer };
}

// statuses: the status expected, or a list of those allowed.
async function expectError(what, statuses, path, body, method) {
	const codes = { 400: 'bad_request', 404: 'not_found', 405: 'method_not_allowed', 413: 'too_large' };
	const allowed = [statuses].flat();
	const res = await post(path, body, method);
	let json = null;
	try {
		json = JSON.parse(res.body.toString('utf8'));
	} catch {}
	const ok = json && json.error === codes[res.status] && typeof json.message === 'string' && json.message !== '';
	if (!allowed.includes(res.status) || !ok)
		fail(`${what}: expected ${allowed.join(' or ')} with a JSON error, got ${res.status} ${text(res.body)}`);
	counts.errors++;
}

// ------------------------------------------------------------- reconcile

function sameList(got, want) {
	return got.length === want.length && got.every((x, i) => x === want[i]);
}

// Runs nip77_client.mjs with a client set and checks have and need.
async function reconcileRun(name, dir, server, client, args) {
	const file = join(dir, `client-${name}.json`);
	writeFileSync(file, JSON.stringify(client.map((e) => entry(e.key, e.value))));
	const serverIds = new Set(server.map((e) => e.id));
	const clientIds = new Set(client.map((e) => e.id));
	const have = [...clientIds].filter((id) => !serverIds.has(id)).sort();
	const need = [...serverIds].filter((id) => !clientIds.has(id)).sort();
	const what = `${name} (${args.join(' ') || 'default limits'})`;
	let out;
	try {
		const argv = [CLIENT, ...args, base, ns, file];
		const { stdout } = await promisify(execFile)('node', argv, { maxBuffer: 64 << 20 });
		out = JSON.parse(stdout);
	} catch (err) {
		fail(`${what}: nip77_client.mjs: ${err.stderr || err.message}`);
	}
	if (!sameList(out.have, have)) fail(`${what}: have is ${out.have.length} ids, not the ${have.length} expected`);
	if (!sameList(out.need, need)) fail(`${what}: need is ${out.need.length} ids, not the ${need.length} expected`);
	if (!(out.rounds >= 1 && out.bytes_sent > 0 && out.bytes_received > 0)) fail(`${what}: ${JSON.stringify(out)}`);
	const at = args.indexOf('--frame-limit');
	const limit = at >= 0 ? Number(args[at + 1]) : CLIENT_FRAME_LIMIT;
	if (out.bytes_sent > out.rounds * limit) fail(`${what}: ${out.bytes_sent} bytes in ${out.rounds} rounds`);
	console.log(
		`  ${what}: have ${have.length}, need ${need.length}, ${out.rounds} rounds, ` +
			`${out.bytes_sent} bytes sent, ${out.bytes_received} received`,
	);
	counts.runs++;
	counts.ids += have.length + need.length;
	return out;
}

// ----------------------------------------------------------------- items

function itemsRequest(ids, values, { version = 1, flags = values ? 1 : 0, n = ids.length } = {}) {
	const head = Buffer.alloc(6);
	head[0] = version;
	head[1] = flags;
	head.writeUInt32BE(n, 2);
	return Buffer.concat([head, ...ids.map((id) => Buffer.from(id, 'hex'))]);
}

// A reader over a frame that fails the check when the frame ends early.
class FrameReader {
	constructor(buf) {
		this.buf = buf;
		this.off = 0;
	}
	take(n, what) {
		if (this.buf.length - this.off < n) fail(`items frame: ends inside ${what}`);
		this.off += n;
		return this.buf.subarray(this.off - n, this.off);
	}
	be32(what) {
		return this.take(4, what).readUInt32BE();
	}
	// An unsigned LEB128 varint, canonical (docs/protocol.md, top).
	leb128(what) {
		let v = 0;
		for (let shift = 0; ; shift += 7) {
			const byte = this.take(1, what)[0];
			if (shift > 0 && byte === 0) fail(`items frame: ${what} is not canonical`);
			v += (byte & 0x7f) * 2 ** shift;
			if (!(byte & 0x80)) return v;
			if (shift >= 63) fail(`items frame: ${what} is too long`);
		}
	}
}

// Decodes and checks an items frame as docs/protocol.md asks a client to:
// ids, digests and values verify, answers come in the order asked, nothing
// was answered that was not asked, and found is what the node holds.
// Returns remaining.
function checkFrame(frame, asked, values, byId) {
	const r = new FrameReader(frame);
	if (r.take(1, 'the version')[0] !== 1) fail('items frame: version is not 1');
	const nFound = r.be32('n_found');
	const found = [];
	for (let i = 0; i < nFound; i++) {
		const id = r.take(32, 'an id').toString('hex');
		const key = r.take(r.leb128('key_len'), 'a key');
		const valueLen = r.leb128('value_len');
		const digest = r.take(32, 'a digest');
		const value = values ? r.take(valueLen, 'a value') : null;
		if (sha256(key, Buffer.from([0]), digest).toString('hex') !== id)
			fail(`items frame: ${id} is not SHA-256(key || 0x00 || digest)`);
		if (value && !sha256(value).equals(digest)) fail(`items frame: the value of ${id} does not hash to its digest`);
		const want = byId.get(id);
		if (!want || want.key !== key.toString('utf8') || want.value.length !== valueLen)
			fail(`items frame: ${id} is not the node's item`);
		found.push(id);
	}
	const nMissing = r.be32('n_missing');
	const missing = [];
	for (let i = 0; i < nMissing; i++) missing.push(r.take(32, 'a missing id').toString('hex'));
	const remaining = r.be32('remaining');
	if (r.off !== frame.length) fail(`items frame: ${frame.length - r.off} bytes after remaining`);
	if (nFound + nMissing + remaining !== asked.length)
		fail(`items frame: ${nFound} found, ${nMissing} missing, ${remaining} remaining of ${asked.length}`);
	// The answered ids, in the order asked, are split into found and missing.
	let f = 0;
	let m = 0;
	for (const id of asked.slice(0, asked.length - remaining)) {
		if (byId.has(id) ? found[f++] !== id : missing[m++] !== id)
			fail(`items frame: ${id} is not answered where it was asked, or wrongly`);
	}
	return remaining;
}

// Asks for ids until every one is answered; returns the frames' sizes.
async function askAll(what, asked, values, byId) {
	const sizes = [];
	let left = asked;
	while (left.length > 0) {
		const res = await post(`${ns}/items`, itemsRequest(left, values));
		if (res.status !== 200) fail(`${what}: HTTP ${res.status} ${text(res.body)}`);
		if (!res.type.startsWith('application/vnd.sluice.items')) fail(`${what}: content type ${res.type}`);
		const remaining = checkFrame(res.body, left, values, byId);
		if (remaining === left.length) fail(`${what}: a frame answered nothing`);
		if (remaining > 0 && res.body.length < ITEMS_BUDGET)
			fail(`${what}: a frame of ${res.body.length} bytes was cut before 16 MiB`);
		counts.frames++;
		counts.answered += left.length - remaining;
		sizes.push(res.body.length);
		left = left.slice(left.length - remaining);
	}
	return sizes;
}

// ------------------------------------------------------------------ check

async function check(dir, server, seed) {
	const rand = rng(seed);
	const byId = new Map(server.map((e) => [e.id, e]));
	const small = server.filter((e) => e.key.startsWith('s/'));
	const big = server.filter((e) => e.key.startsWith('big/'));
	let fresh = 0;
	const newItem = () => item(`client/${seed}/${fresh++}`, randomBytes(rand, 1 + Math.floor(rand() * 100)));
	const randomId = () => randomBytes(rand, 32).toString('hex');

	console.log('reconcile (nip77_client.mjs, nostr-tools initiator):');
	await reconcileRun('same', dir, server, server, []);
	await reconcileRun('empty', dir, server, [], []);
	// Most of the node's small items, some with other values, and new ones.
	const mixed = [];
	for (const e of small) {
		const x = rand();
		if (x >= 0.13) mixed.push(e);
		else if (x >= 0.1) mixed.push(item(e.key, Buffer.concat([e.value, Buffer.from('x')])));
	}
	for (let i = 0; i < 300; i++) mixed.push(newItem());
	await reconcileRun('mixed', dir, server, mixed, []);
	await reconcileRun('mixed', dir, server, mixed, ['--frame-limit', '4096', '--server-limit', '4096']);
	// Half of the node's small items and many new ones.
	const far = small.filter(() => rand() < 0.5);
	for (let i = 0; i < 5000; i++) far.push(newItem());
	const limited = await reconcileRun('far', dir, server, far, ['--server-limit', '4096']);
	if (limited.rounds < 3) fail(`far: ${limited.rounds} rounds with the node's answers within 4096 bytes`);
	await reconcileRun('far', dir, server, far, ['--frame-limit', '4096']);

	// The node keeps its answers within frame_limit, and within 1 MiB.
	const initial = Buffer.from(new Negentropy(makeStorage(far), 1e9).initiate(), 'hex');
	const limits = { '?frame_limit=4096': 4096, '?frame_limit=5000': 5000, '': RECONCILE_BODY_MAX };
	limits[`?frame_limit=${RECONCILE_BODY_MAX}`] = RECONCILE_BODY_MAX;
	for (const [query, limit] of Object.entries(limits)) {
		const res = await post(`${ns}/reconcile${query}`, initial);
		if (res.status !== 200 || res.body[0] !== 0x61) fail(`reconcile${query}: HTTP ${res.status} ${text(res.body)}`);
		if (res.body.length > limit) fail(`reconcile${query}: an answer of ${res.body.length} bytes passes ${limit}`);
	}
	// A message of exactly 1 MiB is taken: a Skip range with a 22-byte
	// prefix (25 bytes) pads it, then one IdList of 32767 ids (a 3-byte
	// varint) up to infinity.
	const exact = Buffer.concat([
		Buffer.from([0x61, 0x01, 22]),
		Buffer.alloc(22),
		Buffer.from([0x00, 0x00, 0x00, 0x02, 0x81, 0xff, 0x7f]),
		randomBytes(rand, 32 * 32767),
	]);
	if (exact.length !== RECONCILE_BODY_MAX) fail(`the 1 MiB message is ${exact.length} bytes`);
	const res = await post(`${ns}/reconcile`, exact);
	if (res.status !== 200) fail(`reconcile: a message of exactly 1 MiB: HTTP ${res.status} ${text(res.body)}`);
	console.log('  answers within frame_limit and 1 MiB; a message of exactly 1 MiB is answered');

	console.log('items:');
	const vector = await post(`${ns}/items`, itemsRequest([VECTOR_ID], true));
	if (vector.status !== 200 || vector.body.toString('hex') !== VECTOR_FRAME)
		fail(`items: the documented example: HTTP ${vector.status} ${vector.body.toString('hex').slice(0, 300)}`);
	counts.frames++;
	counts.answered++;
	console.log('  the documented example, byte for byte');
	const someSmall = small.filter(() => rand() < 0.05).map((e) => e.id);
	const shuffled = [...someSmall, randomId(), big[0].id, randomId()].sort(() => rand() - 0.5);
	let sizes = await askAll('items without values', shuffled, false, byId);
	if (sizes.length !== 1) fail('items without values: cut');
	console.log(`  ${shuffled.length} ids without values: one frame of ${sizes[0]} bytes`);
	const withBig = [...someSmall, randomId(), ...big.map((e) => e.id), randomId()];
	sizes = await askAll('items with values', withBig, true, byId);
	if (sizes.length < 2) fail(`items with values: ${BIG} values of ${BIG_SIZE} bytes were not cut`);
	console.log(`  ${withBig.length} ids with values (${BIG} of ${BIG_SIZE} bytes): frames of ${sizes.join(', ')}`);
	const most = [];
	for (let i = 0; i < ITEMS_MAX_IDS; i++) most.push(i % 1000 === 0 ? small[i / 1000].id : randomId());
	sizes = await askAll(`${ITEMS_MAX_IDS} ids`, most, true, byId);
	if (sizes.length !== 1) fail(`${ITEMS_MAX_IDS} ids: cut`);
	console.log(`  ${ITEMS_MAX_IDS} ids (66 found): one frame of ${sizes[0]} bytes`);

	console.log('errors:');
	const id = small[0].id;
	const idBytes = Buffer.from(id, 'hex');
	const items = `${ns}/items`;
	const itemsBad = {
		'empty body': Buffer.alloc(0),
		'short header': itemsRequest([], false, { n: 1 }).subarray(0, 5),
		'version 2': itemsRequest([id], false, { version: 2 }),
		'version 0': itemsRequest([id], false, { version: 0 }),
		'flag bit 1': itemsRequest([id], false, { flags: 2 }),
		'flag bit 7': itemsRequest([id], false, { flags: 0x81 }),
		'no ids': itemsRequest([], false),
		'an id short': itemsRequest([id], false, { n: 2 }),
		'an id cut': itemsRequest([id], false).subarray(0, 6 + 31),
		'a byte after the ids': Buffer.concat([itemsRequest([id], false), Buffer.from([0])]),
	};
	for (const [what, body] of Object.entries(itemsBad))
		await expectError(`items: ${what}`, 400, items, body);
	// docs/protocol.md gives the items body no cap of its own: sluice reads
	// up to its server-wide cap (64 MiB) and finds the length wrong (400),
	// nip77_peer.mjs stops at the largest valid request (413).
	const tooMany = Buffer.concat([itemsRequest([], false, { n: ITEMS_MAX_IDS }), Buffer.alloc(ITEMS_BODY_MAX - 5)]);
	await expectError('items: a body over the largest request', [400, 413], items, tooMany);
	const overCap = itemsRequest([id], false, { n: ITEMS_MAX_IDS + 1 });
	await expectError('items: 65537 ids asked, one sent', 413, items, overCap);
	await expectError('items: GET', 405, items, null, 'GET');

	const rec = `${ns}/reconcile`;
	const reconcileBad = {
		'empty body': [],
		'version 0x62': [0x62],
		'not a version byte': [0x10, 0, 0, 0],
		'truncated bound': [0x61, 0x00],
		'unknown mode': [0x61, 0x00, 0x00, 0x05],
		'truncated fingerprint': [0x61, 0x00, 0x00, 0x01, 1, 2, 3],
		'IdList past the end': [0x61, 0x00, 0x00, 0x02, 0x02, ...idBytes],
		'prefix over 32 bytes': [0x61, 0x01, 33, ...Buffer.alloc(33), 0x00],
		'bound going back': [0x61, 0x01, 0x01, 0xff, 0x00, 0x01, 0x01, 0x00, 0x00],
		'varint with a leading zero digit': [0x61, 0x80, 0x01, 0x00, 0x00],
	};
	for (const [what, bytes] of Object.entries(reconcileBad))
		await expectError(`reconcile: ${what}`, 400, rec, Buffer.from(bytes));
	await expectError('reconcile: frame_limit below 4096', 400, `${rec}?frame_limit=4095`, initial);
	await expectError('reconcile: frame_limit not a number', 400, `${rec}?frame_limit=4k`, initial);
	const overLimit = `${rec}?frame_limit=${RECONCILE_BODY_MAX + 1}`;
	await expectError('reconcile: frame_limit over 1 MiB', 400, overLimit, initial);
	const over = Buffer.concat([exact, Buffer.alloc(1)]);
	await expectError('reconcile: a body over 1 MiB', 413, rec, over);
	await expectError('reconcile: GET', 405, rec, null, 'GET');
	await expectError('reconcile: another namespace', 404, `${ns}-nosuch/reconcile`, initial);
	const one = itemsRequest([id], false);
	await expectError('items: another namespace', 404, `${ns}-nosuch/items`, one);
	await expectError('another endpoint', 404, `${ns}/reconcile-nosuch`, initial);
	console.log(`  ${counts.errors} bad requests refused with their JSON error`);

	console.log(
		`nip77_http_check: ${counts.runs} client runs (${counts.ids} differing ids), ` +
			`${counts.frames} items frames (${counts.answered} answers), ${counts.errors} errors`,
	);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'gen' && args.length === 2) {
	gen(args[0], Number(args[1]));
} else if (mode === 'check' && args.length === 5) {
	[base, ns] = args;
	base = base.replace(/\/+$/, '');
	await check(args[3], loadItems(args[2]), Number(args[4]));
} else {
	process.stderr.write(
		'usage: node nip77_http_check.mjs gen <items.json> <seed>\n' +
			'       node nip77_http_check.mjs check <base-url> <namespace> <items.json> <workdir> <seed>\n',
	);
	process.exit(2);
}
