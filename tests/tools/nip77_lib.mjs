// Shared by nip77_compare.mjs, nip77_peer.mjs and nip77_client.mjs: a
// negentropy (protocol v1) responder built on nostr-tools's own building
// blocks, a message decoder written from docs/protocol.md, and the item ids
// of sluice's state items.
//
// nostr-tools's Negentropy implements the initiator only: its reconcile()
// settles an IdList range itself instead of answering it with its own ids.
// respond() below is the responder the specification describes, put
// together from nostr-tools's storage (findLowerBound, fingerprint,
// iterate) and codec (decodeBound, encodeBound, splitRange,
// exceededFrameSizeLimit); only the walk over the ranges is written here.
// When a frame fills up it closes with one Fingerprint range over every
// item from where the frame's output ends, so no item goes unfingerprinted.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { nip77 } from 'nostr-tools';

// nostr-tools 2.25.2 does not export the subpath 'nostr-tools/nip77'; its
// package root exports the same module as `nip77`.
export const { Negentropy, NegentropyStorageVector } = nip77;

export const VERSION = 0x61;
export const MODE_SKIP = 0;
export const MODE_FINGERPRINT = 1;
export const MODE_IDLIST = 2;
export const ID_LEN = 32;
export const FINGERPRINT_LEN = 16;
export const INFINITY = Number.MAX_VALUE; // nostr-tools's infinite timestamp

// A malformed message: what was wrong and where.
export class ProtocolError extends Error {}

// mulberry32: small and seedable, good enough to pick test cases.
export function rng(seed) {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

export function toHex(bytes) {
	return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex) {
	if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new Error(`not hex: ${hex.slice(0, 80)}`);
	return new Uint8Array(Buffer.from(hex, 'hex'));
}

function bytesEqual(a, b) {
	if (a.length !== b.length) return false;
	for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
	return true;
}

// The reader nostr-tools's decodeBound expects: length, shift(), shiftN().
export class Reader {
	constructor(bytes) {
		this.bytes = bytes;
		this.off = 0;
	}
	get length() {
		return this.bytes.length - this.off;
	}
	shift() {
		return this.bytes[this.off++];
	}
	shiftN(n) {
		const out = this.bytes.subarray(this.off, this.off + n);
		this.off += n;
		return out;
	}
	take(n, what) {
		if (this.length < n) throw new ProtocolError(`the message ends inside ${what} at byte ${this.off}`);
		return this.shiftN(n);
	}
}

// The writer nostr-tools's splitRange expects: extend() with bytes or with
// one of its own buffers (which have unwrap()).
export class Writer {
	constructor() {
		this.parts = [];
		this.length = 0;
	}
	extend(buf) {
		const bytes = typeof buf.unwrap === 'function' ? buf.unwrap() : buf;
		const copy = Uint8Array.from(bytes);
		this.parts.push(copy);
		this.length += copy.length;
	}
	bytes() {
		const out = new Uint8Array(this.length);
		let off = 0;
		for (const p of this.parts) {
			out.set(p, off);
			off += p.length;
		}
		return out;
	}
}

// Negentropy varints: base 128, most significant digit first.
export function encodeVarint(n) {
	const digits = [];
	do {
		digits.push(n % 128);
		n = Math.floor(n / 128);
	} while (n > 0);
	digits.reverse();
	return Uint8Array.from(digits.map((d, i) => (i < digits.length - 1 ? d | 0x80 : d)));
}

export function readVarint(r, what) {
	const start = r.off;
	let v = 0;
	for (;;) {
		if (r.length === 0) throw new ProtocolError(`the message ends inside ${what} at byte ${start}`);
		const byte = r.shift();
		if (r.off - start === 1 && byte === 0x80) throw new ProtocolError(`${what} has a leading zero digit at byte ${start}`);
		v = v * 128 + (byte & 0x7f);
		if (v > Number.MAX_SAFE_INTEGER) throw new ProtocolError(`${what} is too large at byte ${start}`);
		if (!(byte & 0x80)) return v;
	}
}

function compareBounds(a, b) {
	if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
	for (let i = 0; i < ID_LEN; i++) {
		const x = i < a.id.length ? a.id[i] : 0;
		const y = i < b.id.length ? b.id[i] : 0;
		if (x !== y) return x < y ? -1 : 1;
	}
	return 0;
}

// Decode a whole message as docs/protocol.md writes it, without nostr-tools:
// { ranges: [{ ts (INFINITY for infinity), id (prefix), mode,
// fingerprint?, ids? }] }. Throws ProtocolError on anything malformed.
export function parseMessage(bytes) {
	const r = new Reader(bytes);
	if (r.length === 0) throw new ProtocolError('the message is empty');
	const version = r.shift();
	if (version !== VERSION)
		throw new ProtocolError(`version byte 0x${version.toString(16)} is not 0x61 (protocol version 1)`);
	const ranges = [];
	let lastTs = 0;
	let prev = { ts: 0, id: new Uint8Array(0) };
	while (r.length > 0) {
		const start = r.off;
		const enc = readVarint(r, "a bound's timestamp");
		let ts;
		if (enc === 0 || lastTs === INFINITY) ts = INFINITY;
		else ts = lastTs + enc - 1;
		lastTs = ts;
		const len = readVarint(r, "a bound's id length");
		if (len > ID_LEN) throw new ProtocolError(`a bound's id prefix is longer than 32 bytes at byte ${start}`);
		const range = { ts, id: r.take(len, "a bound's id prefix"), mode: readVarint(r, "a range's mode") };
		if (compareBounds(range, prev) < 0) throw new ProtocolError(`a bound goes backwards at byte ${start}`);
		prev = range;
		if (range.mode === MODE_FINGERPRINT) {
			range.fingerprint = r.take(FINGERPRINT_LEN, 'a fingerprint');
		} else if (range.mode === MODE_IDLIST) {
			const n = readVarint(r, "an id list's length");
			if (n > r.length / ID_LEN) throw new ProtocolError(`an id list is longer than the message at byte ${start}`);
			const ids = r.take(n * ID_LEN, 'an id list');
			range.ids = [];
			for (let i = 0; i < n; i++) range.ids.push(ids.subarray(i * ID_LEN, (i + 1) * ID_LEN));
		} else if (range.mode !== MODE_SKIP) {
			throw new ProtocolError(`unknown mode ${range.mode} at byte ${start}`);
		}
		ranges.push(range);
	}
	return { ranges };
}

// A sealed nostr-tools storage of [{ ts, id (hex) }].
export function makeStorage(items) {
	const storage = new NegentropyStorageVector();
	for (const item of items) storage.insert(item.ts, item.id);
	storage.seal();
	return storage;
}

// The responder's answer to msg (bytes) over a sealed storage, within
// frameLimit (at least 4096, as nostr-tools requires). Throws
// ProtocolError on a malformed message.
export function respond(storage, frameLimit, msg) {
	parseMessage(msg); // the whole message is checked before anything is done
	const neg = new Negentropy(storage, frameLimit);
	const r = new Reader(msg);
	r.shift(); // the version, checked above
	const size = storage.size();
	const out = new Writer();
	out.extend([VERSION]);
	let prevBound = { timestamp: 0, id: new Uint8Array(0) };
	let prevIndex = 0;
	let skip = false;
	let outEnd = 0; // our first item not covered by the ranges in out
	let outAtInfinity = false;

	while (r.length > 0) {
		const o = new Writer();
		const writeSkip = () => {
			if (!skip) return;
			o.extend(neg.encodeBound(prevBound));
			o.extend(encodeVarint(MODE_SKIP));
			skip = false;
		};
		const bound = neg.decodeBound(r);
		const mode = readVarint(r, "a range's mode");
		const lower = prevIndex;
		let upper = storage.findLowerBound(prevIndex, size, bound);
		let end = bound; // the bound o ends at
		let direct = false; // o went to out already

		if (mode === MODE_SKIP) {
			skip = true;
		} else if (mode === MODE_FINGERPRINT) {
			const theirs = r.take(FINGERPRINT_LEN, 'a fingerprint');
			if (bytesEqual(theirs, storage.fingerprint(lower, upper))) {
				skip = true;
			} else {
				writeSkip();
				neg.splitRange(lower, upper, bound, o);
			}
		} else if (mode === MODE_IDLIST) {
			const n = readVarint(r, "an id list's length");
			r.take(n * ID_LEN, 'an id list');
			writeSkip();
			// Our ids of the range, up to the frame limit; a cut list ends
			// at the first item left out.
			const ids = [];
			storage.iterate(lower, upper, (item, index) => {
				if (neg.exceededFrameSizeLimit(out.length + o.length + ids.length * ID_LEN)) {
					end = { timestamp: item.timestamp, id: item.id };
					upper = index;
					return false;
				}
				ids.push(item.id);
				return true;
			});
			o.extend(neg.encodeBound(end));
			o.extend(encodeVarint(MODE_IDLIST));
			o.extend(encodeVarint(ids.length));
			for (const id of ids) o.extend(id);
			out.extend(o.bytes());
			direct = true;
			outEnd = upper;
			outAtInfinity = end.timestamp === INFINITY;
		} else {
			throw new ProtocolError(`unknown mode ${mode}`);
		}

		if (neg.exceededFrameSizeLimit(out.length + (direct ? 0 : o.length))) {
			// Full: what o holds is dropped, and one Fingerprint range up
			// to infinity covers every item after the end of out.
			if (!outAtInfinity) {
				out.extend(neg.encodeBound({ timestamp: INFINITY, id: new Uint8Array(0) }));
				out.extend(encodeVarint(MODE_FINGERPRINT));
				out.extend(storage.fingerprint(outEnd, size));
			}
			break;
		}
		if (!direct && o.length > 0) {
			out.extend(o.bytes());
			outEnd = upper;
			outAtInfinity = end.timestamp === INFINITY;
		}
		prevIndex = upper;
		prevBound = bound;
	}
	return out.bytes();
}

// The item id of a key with its value: SHA-256(key || 0x00 || SHA-256(value)).
export function itemId(key, value) {
	const digest = createHash('sha256').update(value).digest();
	return createHash('sha256').update(Buffer.from(key, 'utf8')).update(Buffer.from([0])).update(digest).digest();
}

// A JSON file of [{ key, value_b64 }] as [{ key, value, digest, id (hex), ts: 0 }].
export function loadItems(path) {
	const list = JSON.parse(readFileSync(path, 'utf8'));
	if (!Array.isArray(list)) throw new Error(`${path}: not a JSON array`);
	const seen = new Set();
	return list.map((e, i) => {
		if (typeof e.key !== 'string' || typeof e.value_b64 !== 'string')
			throw new Error(`${path}: entry ${i} wants a string key and value_b64`);
		if (e.key.length === 0 || e.key.includes('\0')) throw new Error(`${path}: entry ${i}: bad key`);
		if (seen.has(e.key)) throw new Error(`${path}: key ${JSON.stringify(e.key)} twice`);
		seen.add(e.key);
		const value = Buffer.from(e.value_b64, 'base64');
		return {
			key: e.key,
			value,
			digest: createHash('sha256').update(value).digest(),
			id: itemId(e.key, value).toString('hex'),
			ts: 0,
		};
	});
}
