// A stand-in for a sluice node that serves one namespace's set
// reconciliation endpoints, as docs/protocol.md writes them ("Set
// reconciliation": "Endpoints" and "Items request and frame"), built on
// nostr-tools through nip77_lib.mjs. Tests point NIP-77 clients at it, and
// nip77_client.mjs at it and at a real `sluice serve` alike.
//
//   node tests/tools/nip77_peer.mjs <namespace> <items.json> [port]
//
// items.json: [{"key": "a/b", "value_b64": "aGVsbG8="}, ...]; each entry is
// the state item of a live key (timestamp 0, id = SHA-256(key || 0x00 ||
// SHA-256(value))). Listens on 127.0.0.1 (port 0, the default, lets the
// kernel pick) and prints `listening <port>` once it does.
//
//   POST /api/v0/ns/{ns}/reconcile[?frame_limit=L]
//        body: a negentropy message; answer: the responder's next message,
//        within 1 MiB or the smaller L (4096 and up; a larger L is 400, as
//        sluice answers it). 400 for a malformed message or L, 413 for a
//        body over 1 MiB.
//   POST /api/v0/ns/{ns}/items
//        body: an items request; answer: an items frame that stops growing
//        once it holds 16 MiB. 400 for a malformed request, 413 for one
//        asking for more than 65536 ids or a body longer than the largest
//        valid one.
//
// Any other namespace or path is 404, another method 405; every error is
// {"error": code, "message": text}. Unlike sluice, it refuses (400) a
// timestamp written as a varint of 2^31 and up, which nostr-tools's 32-bit
// varints would misread; state items all have timestamp 0.
import { createServer } from 'node:http';
import { INFINITY, ProtocolError, loadItems, makeStorage, parseMessage, respond } from './nip77_lib.mjs';

const FRAME_LIMIT_MAX = 1 << 20; // reconcile: body cap and default frame limit
const FRAME_LIMIT_MIN = 4096;
const ITEMS_MAX_IDS = 65536;
const ITEMS_HEADER = 6; // u8 version | u8 flags | be32 n
const ITEMS_BODY_MAX = ITEMS_HEADER + 32 * ITEMS_MAX_IDS;
const ITEMS_FRAME_BUDGET = 16 << 20;
const FLAG_VALUES = 1;

const ERROR_CODES = {
	400: 'bad_request',
	404: 'not_found',
	405: 'method_not_allowed',
	413: 'too_large',
	500: 'internal',
};

class HttpError extends Error {
	constructor(status, message) {
		super(message);
		this.status = status;
	}
}

const [ns, itemsPath, portArg = '0'] = process.argv.slice(2);
if (!ns || !itemsPath || !/^[0-9]+$/.test(portArg)) {
	process.stderr.write('usage: node nip77_peer.mjs <namespace> <items.json> [port]\n');
	process.exit(2);
}
const items = loadItems(itemsPath);
const storage = makeStorage(items);
const byId = new Map(items.map((it) => [it.id, it]));

// Unsigned LEB128, as the items frame's varints (docs/protocol.md, top).
function leb128(n) {
	const out = [];
	do {
		let byte = n % 128;
		n = Math.floor(n / 128);
		if (n > 0) byte |= 0x80;
		out.push(byte);
	} while (n > 0);
	return Buffer.from(out);
}

function be32(n) {
	const b = Buffer.alloc(4);
	b.writeUInt32BE(n);
	return b;
}

// The body, or HttpError 413 once it passes cap (the rest is read and
// dropped, so the client gets the answer rather than a reset connection).
function readBody(req, cap) {
	return new Promise((resolve, reject) => {
		const parts = [];
		let len = 0;
		req.on('data', (chunk) => {
			len += chunk.length;
			if (len <= cap) parts.push(chunk);
		});
		req.on('end', () => {
			if (len > cap) reject(new HttpError(413, `the body of ${len} bytes is over ${cap}`));
			else resolve(Buffer.concat(parts));
		});
		req.on('error', reject);
	});
}

function frameLimit(query) {
	const values = query.getAll('frame_limit');
	if (values.length === 0) return FRAME_LIMIT_MAX;
	if (values.length > 1) throw new HttpError(400, 'frame_limit is given twice');
	if (!/^[0-9]+$/.test(values[0]))
		throw new HttpError(400, `frame_limit is not a decimal number: ${values[0]}`);
	const limit = Number(values[0]);
	if (limit < FRAME_LIMIT_MIN || limit > FRAME_LIMIT_MAX)
		throw new HttpError(400, `frame_limit ${values[0]} is not within ${FRAME_LIMIT_MIN}..${FRAME_LIMIT_MAX}`);
	return limit;
}

async function reconcile(req, query) {
	const limit = frameLimit(query);
	const body = await readBody(req, FRAME_LIMIT_MAX);
	try {
		let prev = 0;
		for (const range of parseMessage(new Uint8Array(body)).ranges) {
			if (range.ts === INFINITY) break;
			if (range.ts - prev + 1 >= 2 ** 31)
				throw new ProtocolError(`a timestamp offset of ${range.ts - prev} is past what nostr-tools reads`);
			prev = range.ts;
		}
		const answer = respond(storage, limit, new Uint8Array(body));
		return { type: 'application/octet-stream', body: Buffer.from(answer) };
	} catch (err) {
		if (err instanceof ProtocolError) throw new HttpError(400, err.message);
		throw err;
	}
}

async function itemsFrame(req) {
	const body = await readBody(req, ITEMS_BODY_MAX);
	if (body.length < ITEMS_HEADER)
		throw new HttpError(400, `an items request of ${body.length} bytes is shorter than its header`);
	const version = body[0];
	const flags = body[1];
	const n = body.readUInt32BE(2);
	if (version !== 1) throw new HttpError(400, `items request version ${version} is not 1`);
	if (flags & ~FLAG_VALUES) throw new HttpError(400, `unknown items request flags 0x${flags.toString(16)}`);
	// Over the cap is "too large", as sluice answers it.
	if (n > ITEMS_MAX_IDS) throw new HttpError(413, `an items request of ${n} ids is over ${ITEMS_MAX_IDS}`);
	if (n < 1) throw new HttpError(400, 'an items request asks for no ids');
	if (body.length !== ITEMS_HEADER + 32 * n)
		throw new HttpError(400, `a request for ${n} ids is ${ITEMS_HEADER + 32 * n} bytes, not ${body.length}`);

	const found = [];
	const missing = [];
	let size = 1 + 4 + 4 + 4; // version, the two counts, remaining
	let answered = 0;
	while (answered < n && size < ITEMS_FRAME_BUDGET) {
		const id = body.subarray(ITEMS_HEADER + 32 * answered, ITEMS_HEADER + 32 * (answered + 1));
		const item = byId.get(id.toString('hex'));
		answered++;
		if (!item) {
			missing.push(id);
			size += 32;
			continue;
		}
		const key = Buffer.from(item.key, 'utf8');
		const parts = [id, leb128(key.length), key, leb128(item.value.length), item.digest];
		if (flags & FLAG_VALUES) parts.push(item.value);
		const entry = Buffer.concat(parts);
		found.push(entry);
		size += entry.length;
	}
	const frame = Buffer.concat([
		Buffer.from([1]),
		be32(found.length),
		...found,
		be32(missing.length),
		...missing,
		be32(n - answered),
	]);
	return { type: 'application/vnd.sluice.items', body: frame };
}

const ROUTE = /^\/api\/v0\/ns\/([^/]+)\/(reconcile|items)$/;

async function handle(req, res) {
	const url = new URL(req.url, 'http://peer');
	const match = ROUTE.exec(url.pathname);
	if (!match) throw new HttpError(404, `no such endpoint: ${url.pathname}`);
	let name;
	try {
		name = decodeURIComponent(match[1]);
	} catch {
		throw new HttpError(404, `no such namespace: ${match[1]}`);
	}
	if (name !== ns) throw new HttpError(404, `no such namespace: ${name}`);
	if (req.method !== 'POST') {
		res.setHeader('Allow', 'POST');
		throw new HttpError(405, `${match[2]} wants POST, not ${req.method}`);
	}
	return match[2] === 'reconcile' ? reconcile(req, url.searchParams) : itemsFrame(req);
}

const server = createServer((req, res) => {
	handle(req, res)
		.then(({ type, body }) => {
			res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length });
			res.end(body);
		})
		.catch((err) => {
			const status = err instanceof HttpError ? err.status : 500;
			if (status === 500) process.stderr.write(`nip77_peer: ${err.stack}\n`);
			// Drop whatever of the body is still coming.
			req.resume();
			const body = Buffer.from(JSON.stringify({ error: ERROR_CODES[status], message: err.message }));
			res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
			res.end(body);
		});
});
server.requestTimeout = 30000;
server.listen(Number(portArg), '127.0.0.1', () => {
	process.stdout.write(`listening ${server.address().port}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
