// An independent reader of DAG entries, written from docs/protocol.md
// ("DAG entries") alone with Node's own SHA-256 and Ed25519: reads one
// entry a line (hex) on stdin, checks its form and signature, and prints
// it as one JSON object a line in the shape of `sluice dag log --json`,
// so a test can compare the two readings. Exits 1 on the first entry it
// cannot read or verify, naming why.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { createInterface } from 'node:readline';

const DOMAIN = Buffer.from('sluice/dag-entry/v1');
const ROLES = ['none', 'read', 'write', 'admin'];
const hex = (b) => Buffer.from(b).toString('hex');

class Reader {
	constructor(buf) {
		this.buf = buf;
		this.at = 0;
	}
	bytes(n) {
		if (this.at + n > this.buf.length) throw new Error(`cut short at byte ${this.at}`);
		const out = this.buf.subarray(this.at, this.at + n);
		this.at += n;
		return out;
	}
	u8() {
		return this.bytes(1)[0];
	}
	be32() {
		return this.bytes(4).readUInt32BE(0);
	}
	be64() {
		return this.bytes(8).readBigUInt64BE(0);
	}
	// LEB128, canonical: no trailing zero group, at most 10 bytes.
	varint() {
		let v = 0n;
		for (let i = 0; i < 10; i++) {
			const b = this.u8();
			v |= BigInt(b & 0x7f) << BigInt(7 * i);
			if (!(b & 0x80)) {
				if (b === 0 && i > 0) throw new Error('a varint that is not canonical');
				if (v >= 1n << 64n) throw new Error('a varint past 64 bits');
				return v;
			}
		}
		throw new Error('a varint longer than 10 bytes');
	}
}

function publicKey(raw) {
	const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]);
	return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

function readEntry(buf) {
	const r = new Reader(buf);
	if (r.u8() !== 1) throw new Error('unknown version');
	const ns = r.bytes(32);
	const height = r.be64();
	const nParents = r.u8();
	const parents = [];
	for (let i = 0; i < nParents; i++) parents.push(hex(r.bytes(32)));
	const author = r.bytes(32);
	const time = r.be64();
	const nWrites = r.be32();
	const writes = [];
	for (let i = 0; i < nWrites; i++) {
		const kind = r.u8();
		if (kind === 1 || kind === 2) {
			const key = r.bytes(Number(r.varint())).toString('utf8');
			if (kind === 2) {
				writes.push({ delete: key });
				continue;
			}
			const size = Number(r.varint());
			writes.push({ set: key, size, digest: hex(r.bytes(32)) });
		} else if (kind === 3) {
			const pk = hex(r.bytes(32));
			const role = r.u8();
			if (role >= ROLES.length) throw new Error(`unknown role ${role}`);
			writes.push({ role: pk, to: ROLES[role] });
		} else {
			throw new Error(`unknown write kind ${kind}`);
		}
	}
	const signed = buf.subarray(0, r.at);
	const signature = r.bytes(64);
	if (r.at !== buf.length) throw new Error('bytes after the signature');
	if (!verify(null, Buffer.concat([DOMAIN, signed]), publicKey(author), signature))
		throw new Error('the signature does not verify');
	const root = nParents === 0;
	if (root !== (height === 0n)) throw new Error('only the root has height 0');
	if (!root && ns.every((b) => b === 0)) throw new Error('an entry names no namespace');
	for (let i = 1; i < parents.length; i++)
		if (!(parents[i - 1] < parents[i])) throw new Error('parents not sorted and distinct');
	return {
		id: createHash('sha256').update(buf).digest('hex'),
		height: Number(height),
		author: hex(author),
		time_ms: Number(time),
		parents,
		writes,
	};
}

let n = 0;
for await (const line of createInterface({ input: process.stdin })) {
	if (!line.trim()) continue;
	try {
		console.log(JSON.stringify(readEntry(Buffer.from(line.trim(), 'hex'))));
		n++;
	} catch (e) {
		console.error(`dag_entry_check: entry ${n + 1}: ${e.message}`);
		process.exit(1);
	}
}
if (n === 0) {
	console.error('dag_entry_check: no entry read');
	process.exit(1);
}
