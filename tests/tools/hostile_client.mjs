// Misbehaving HTTP clients for tests/cli/hostile.sh, each from one local
// address (--from 127.0.0.2, ...) so a server sees one client. Node's
// built-in modules only. Every mode stops by itself and prints one JSON
// line of what it saw.
//
//   node hostile_client.mjs halfopen --port P --from ADDR --count N --hold S
//        opens N connections and sends half a request head on each (the
//        request line and one header, no blank line), then waits S seconds.
//        Prints {"opened", "closed_at_once", "closed_at": [seconds after
//        connecting, of those the server closed later], "still_open"}.
//        "closed_at_once" counts connections closed within 1 s of
//        connecting (refused at accept).
//   node hostile_client.mjs flood --port P --from ADDR --seconds S
//        --concurrency C --path PATH
//        sends GET PATH as fast as it can over C kept-alive connections for
//        S seconds. Prints {"ok", "throttled", "other", "errors",
//        "retry_after": [distinct values seen], "rate"}.
//   node hostile_client.mjs slowbody --port P --from ADDR --bytes N --rate R
//        POSTs a body of N bytes at R bytes per second. Prints
//        {"sent", "closed_after"} (seconds until the server closed, or null).
import http from 'node:http';
import net from 'node:net';

function args() {
	const [mode, ...rest] = process.argv.slice(2);
	const o = { mode };
	for (let i = 0; i < rest.length; i += 2) o[rest[i].replace(/^--/, '')] = rest[i + 1];
	for (const k of ['port', 'count', 'hold', 'seconds', 'concurrency', 'bytes', 'rate'])
		if (k in o) o[k] = Number(o[k]);
	if (!o.port || !o.from) {
		process.stderr.write('usage: see the top of hostile_client.mjs\n');
		process.exit(2);
	}
	return o;
}

const now = () => Number(process.hrtime.bigint() / 1000000n) / 1000;

function halfopen(o) {
	return new Promise((resolve) => {
		const closedAt = [];
		let opened = 0, closedAtOnce = 0, open = 0;
		const sockets = [];
		for (let i = 0; i < o.count; i++) {
			const start = now();
			const s = net.connect({ host: '127.0.0.1', port: o.port, localAddress: o.from });
			sockets.push(s);
			s.on('connect', () => {
				opened++;
				open++;
				s.write('GET /api/v0/info HTTP/1.1\r\nHost: sluice\r\n');
			});
			s.on('error', () => {});
			s.on('close', () => {
				if (s.connecting === false && open > 0) open--;
				const after = now() - start;
				if (after < 1) closedAtOnce++;
				else closedAt.push(Math.round(after * 10) / 10);
			});
		}
		setTimeout(() => {
			const stillOpen = sockets.filter((s) => !s.destroyed).length;
			for (const s of sockets) s.destroy();
			resolve({ opened, closed_at_once: closedAtOnce, closed_at: closedAt.sort((a, b) => a - b), still_open: stillOpen });
		}, o.hold * 1000);
	});
}

function flood(o) {
	const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency, localAddress: o.from });
	const seen = { ok: 0, throttled: 0, other: 0, errors: 0 };
	const retryAfter = new Set();
	const end = now() + o.seconds;
	const one = () =>
		new Promise((resolve) => {
			const req = http.get({ host: '127.0.0.1', port: o.port, path: o.path, agent }, (res) => {
				if (res.statusCode === 200) seen.ok++;
				else if (res.statusCode === 429) {
					seen.throttled++;
					retryAfter.add(res.headers['retry-after']);
				} else seen.other++;
				res.resume();
				res.on('end', resolve);
				res.on('error', resolve);
			});
			req.on('error', () => {
				seen.errors++;
				resolve();
			});
		});
	const worker = async () => {
		while (now() < end) await one();
	};
	const started = now();
	return Promise.all(Array.from({ length: o.concurrency }, worker)).then(() => {
		agent.destroy();
		const total = seen.ok + seen.throttled + seen.other;
		return { ...seen, retry_after: [...retryAfter], rate: Math.round(total / (now() - started)) };
	});
}

function slowbody(o) {
	return new Promise((resolve) => {
		const start = now();
		let sent = 0, done = false;
		const s = net.connect({ host: '127.0.0.1', port: o.port, localAddress: o.from }, () => {
			s.write(`POST /api/v0/ns/demo/commit HTTP/1.1\r\nHost: sluice\r\nContent-Length: ${o.bytes}\r\n\r\n`);
			const tick = setInterval(() => {
				if (done || sent >= o.bytes) return clearInterval(tick);
				const n = Math.max(1, Math.round(o.rate / 10));
				s.write(Buffer.alloc(n, 0x61));
				sent += n;
			}, 100);
		});
		const finish = (closedAfter) => {
			if (done) return;
			done = true;
			s.destroy();
			resolve({ sent, closed_after: closedAfter });
		};
		s.on('error', () => {});
		s.on('close', () => finish(Math.round((now() - start) * 10) / 10));
		setTimeout(() => finish(null), 60000);
	});
}

const o = args();
const run = { halfopen, flood, slowbody }[o.mode];
if (!run) {
	process.stderr.write(`unknown mode ${o.mode}\n`);
	process.exit(2);
}
run(o).then((result) => {
	process.stdout.write(JSON.stringify(result) + '\n');
	process.exit(0);
});
