// A NIP-77 initiator (nostr-tools's Negentropy) reconciling a set of items
// with a sluice node's namespace over HTTP, as docs/protocol.md writes the
// endpoint ("Set reconciliation", "Endpoints"): each message is POSTed to
// the namespace's reconcile endpoint as a binary body and the answer is the
// responder's next message. Works against `sluice serve` and against
// nip77_peer.mjs.
//
//   node tests/tools/nip77_client.mjs [options] <base-url> <namespace> <items.json>
//
//   base-url          http://127.0.0.1:PORT (the path /api/v0/... is added)
//   items.json        [{"key": "a/b", "value_b64": "aGVsbG8="}, ...]; each entry
//                     is the item (timestamp 0, SHA-256(key || 0x00 ||
//                     SHA-256(value))) of a live key
//   --frame-limit N   the initiator's own frame size limit (default 60000,
//                     at least 4096, as nostr-tools requires)
//   --server-limit N  ask the node to keep its answers within N bytes
//                     (sent as ?frame_limit=N; default: the node's own)
//
// Prints one JSON line: {"have": [hex...], "need": [hex...], "rounds": N,
// "bytes_sent": N, "bytes_received": N}. have: ids this side holds that the
// node lacks; need: the other way round; both sorted, each id once (an id
// can be reported again after a frame was cut). rounds counts the POSTs,
// bytes the request and answer bodies. Exits 1 with a message on stderr
// for an HTTP error (its status and JSON body), a malformed answer or a
// timeout (30 s a request), 2 for a bad command line.
import { Negentropy, fromHex, loadItems, makeStorage, toHex } from './nip77_lib.mjs';

const TIMEOUT_MS = 30000;
const MAX_ROUNDS = 100000;

function usage(why) {
	process.stderr.write(
		`nip77_client: ${why}\n` +
			'usage: node nip77_client.mjs [--frame-limit N] [--server-limit N] <base-url> <namespace> <items.json>\n',
	);
	process.exit(2);
}

function parseArgs(argv) {
	const opts = { frameLimit: 60000, serverLimit: null };
	const positional = [];
	for (let i = 0; i < argv.length; i++) {
		const arg = argv[i];
		if (arg === '--frame-limit' || arg === '--server-limit') {
			const value = argv[++i];
			if (value === undefined || !/^[0-9]+$/.test(value)) usage(`${arg} wants a byte count`);
			if (arg === '--frame-limit') opts.frameLimit = Number(value);
			else opts.serverLimit = value;
		} else if (arg.startsWith('--')) {
			usage(`unknown option ${arg}`);
		} else {
			positional.push(arg);
		}
	}
	if (positional.length !== 3) usage('wants a base URL, a namespace and an items file');
	if (opts.frameLimit < 4096) usage('--frame-limit is at least 4096');
	[opts.base, opts.ns, opts.itemsPath] = positional;
	return opts;
}

async function post(url, body) {
	let res;
	try {
		res = await fetch(url, {
			method: 'POST',
			headers: { 'Content-Type': 'application/octet-stream' },
			body,
			signal: AbortSignal.timeout(TIMEOUT_MS),
		});
	} catch (err) {
		throw new Error(`POST ${url}: ${err.cause?.message ?? err.message}`);
	}
	const answer = new Uint8Array(await res.arrayBuffer());
	if (res.status !== 200)
		throw new Error(`POST ${url}: HTTP ${res.status}: ${Buffer.from(answer).toString('utf8').slice(0, 500)}`);
	return answer;
}

async function main() {
	const opts = parseArgs(process.argv.slice(2));
	const storage = makeStorage(loadItems(opts.itemsPath));
	const neg = new Negentropy(storage, opts.frameLimit);
	let url = `${opts.base.replace(/\/+$/, '')}/api/v0/ns/${encodeURIComponent(opts.ns)}/reconcile`;
	if (opts.serverLimit !== null) url += `?frame_limit=${opts.serverLimit}`;

	const have = new Set();
	const need = new Set();
	const out = { rounds: 0, bytes_sent: 0, bytes_received: 0 };
	let msg = neg.initiate();
	while (msg !== null) {
		if (out.rounds >= MAX_ROUNDS) throw new Error(`no end after ${MAX_ROUNDS} rounds`);
		const body = fromHex(msg);
		const answer = await post(url, body);
		out.rounds++;
		out.bytes_sent += body.length;
		out.bytes_received += answer.length;
		try {
			msg = neg.reconcile(toHex(answer), (id) => have.add(id), (id) => need.add(id));
		} catch (err) {
			const head = toHex(answer).slice(0, 200);
			throw new Error(`round ${out.rounds}: the answer ${head} is refused: ${err.message}`);
		}
	}
	process.stdout.write(JSON.stringify({ have: [...have].sort(), need: [...need].sort(), ...out }) + '\n');
}

main().catch((err) => {
	process.stderr.write(`nip77_client: ${err.message}\n`);
	process.exit(1);
});
