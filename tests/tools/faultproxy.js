#!/usr/bin/env node
// Fault-injecting HTTP reverse proxy for integration tests. Built-in modules
// only (no npm packages).
//
//   node tests/tools/faultproxy.js --upstream 127.0.0.1:PORT [--listen PORT] --control FILE
//        [--sigv4-secret SECRET]
//
// Listens on 127.0.0.1 (--listen PORT, default 0: a free port), prints one
// line `listening <port>` to stdout when ready, then logs one line per request
// to stderr: `<mode> <method> <path> <status> <bytes>`, where mode is the mode
// applied to that request (`pass` when the path filter did not match), path is
// the request target as sent (path and query), status is `-` when no response
// was sent and bytes counts the body bytes sent to the client.
//
// Every request (method, path and query, headers, body) goes to the upstream
// over keep-alive connections; the upstream response is buffered whole so it
// can be altered. An upstream that cannot be reached gets a 502 with a JSON
// error.
//
// Before each request the proxy reads FILE: a mode word, optionally followed
// by a path filter, e.g. `corrupt /ops`. The fault applies only to requests
// whose target contains the filter as a substring (default: every request). A
// missing or empty file means `pass`; an unknown mode is reported on stderr
// and treated as `pass`. Write FILE atomically (write a temporary file, then
// rename it) so a request never sees it half-written.
//
// The mode word may end in `:N` (e.g. `slowdown503:2 /dest/`): the fault then
// applies to the next N matching requests only, and later ones pass. The
// count starts again whenever the file's text changes.
//
//   pass      forward unchanged
//   corrupt   flip one random bit of one random byte of the response body
//             (an empty body passes unchanged); status and headers unchanged
//   truncate  send the headers with the full Content-Length, then the first
//             half of the body, then close the connection
//   stall     never answer; the connection stays open until the client gives up
//   error503  answer 503 {"error":"unavailable","message":"fault proxy"}
//             without contacting the upstream
//   garbage   replace the body with random bytes of the same length
//   reset     drop the client connection at once (TCP RST), without answering
//   status500 answer 500 with an S3 XML error body (Code InternalError)
//             without contacting the upstream
//   slowdown503
//             answer 503 with an S3 XML error body (Code SlowDown) and
//             `Retry-After: 1`, without contacting the upstream
//   sigv4     check each request's AWS Signature V4 (Authorization header)
//             against --sigv4-secret, and its body against
//             x-amz-content-sha256; a mismatch gets 403 with an S3 XML error
//             body (Code SignatureDoesNotMatch, or XAmzContentSHA256Mismatch),
//             a match is forwarded. For S3 servers that do not check V4
//             signatures themselves.
//
// On SIGTERM or SIGINT it prints `altered <n>` to stdout, the number of
// responses it altered, and exits 0. A response counts as altered when the
// client got something other than what the upstream would have sent (corrupt
// and garbage on an empty body, and truncate of an empty body, alter nothing).
'use strict';

const fs = require('fs');
const http = require('http');
const crypto = require('crypto');

const MODES = new Set(['pass', 'corrupt', 'truncate', 'stall', 'error503', 'garbage', 'reset',
	'status500', 'slowdown503', 'sigv4']);

// Hop-by-hop headers (RFC 9110, 7.6.1) are not forwarded in either direction;
// content-length is recomputed from the buffered body.
const HOP_BY_HOP = new Set([
	'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
	'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'content-length',
]);

function usage(msg) {
	if (msg) process.stderr.write(`faultproxy: ${msg}\n`);
	process.stderr.write('usage: node tests/tools/faultproxy.js --upstream HOST:PORT [--listen PORT] --control FILE [--sigv4-secret SECRET]\n');
	process.exit(2);
}

function parseArgs(argv) {
	const opts = { listen: 0 };
	for (let i = 0; i < argv.length; i++) {
		let name = argv[i];
		let value;
		const eq = name.indexOf('=');
		if (name.startsWith('--') && eq > 0) {
			value = name.slice(eq + 1);
			name = name.slice(0, eq);
		} else if (name === '-h' || name === '--help') {
			usage();
		} else {
			value = argv[++i];
		}
		if (value === undefined) usage(`${name} needs a value`);
		switch (name) {
		case '--upstream': {
			const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value);
			if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) usage(`bad --upstream '${value}' (want HOST:PORT)`);
			opts.upstreamHost = m[1] || m[2] || '127.0.0.1';
			opts.upstreamPort = Number(m[3]);
			break;
		}
		case '--listen':
			if (!/^\d+$/.test(value) || Number(value) > 65535) usage(`bad --listen '${value}'`);
			opts.listen = Number(value);
			break;
		case '--control':
			opts.control = value;
			break;
		case '--sigv4-secret':
			opts.sigv4Secret = value;
			break;
		default:
			usage(`unknown argument '${name}'`);
		}
	}
	if (opts.upstreamPort === undefined) usage('--upstream is required');
	if (opts.control === undefined) usage('--control is required');
	return opts;
}

const opts = parseArgs(process.argv.slice(2));
const upstreamName = `${opts.upstreamHost}:${opts.upstreamPort}`;
const agent = new http.Agent({ keepAlive: true });
let altered = 0;
let lastWarning = '';

function warn(msg) {
	// Warn once per distinct problem, not once per request.
	if (msg === lastWarning) return;
	lastWarning = msg;
	process.stderr.write(`faultproxy: ${msg}\n`);
}

// For `mode:N`: the control text the count belongs to, and what is left.
let countedText = null;
let countLeft = 0;

// The mode for one request: read the control file, apply the path filter.
function modeFor(target) {
	let text;
	try {
		text = fs.readFileSync(opts.control, 'utf8');
	} catch (err) {
		if (err.code !== 'ENOENT') warn(`cannot read ${opts.control}: ${err.message}; passing`);
		return 'pass';
	}
	const words = text.trim().split(/\s+/).filter(Boolean);
	if (words.length === 0) return 'pass';
	const counted = /^([^:]+):(\d+)$/.exec(words[0]);
	const mode = (counted ? counted[1] : words[0]).toLowerCase();
	if (!MODES.has(mode)) {
		warn(`unknown mode '${words[0]}' in ${opts.control}; passing`);
		return 'pass';
	}
	if (words.length > 2) warn(`ignoring extra words in ${opts.control}: '${words.slice(2).join(' ')}'`);
	if (words.length > 1 && !target.includes(words[1])) return 'pass';
	if (counted) {
		if (text !== countedText) {
			countedText = text;
			countLeft = Number(counted[2]);
		}
		if (countLeft <= 0) return 'pass';
		countLeft--;
	}
	return mode;
}

function log(mode, req, status, bytes) {
	process.stderr.write(`${mode} ${req.method} ${req.url} ${status} ${bytes}\n`);
}

// Raw header pairs -> { Name: value | [values] }, hop-by-hop headers dropped.
function headerObject(raw) {
	const out = {};
	const seen = new Map(); // lower-case name -> name as first seen
	for (let i = 0; i + 1 < raw.length; i += 2) {
		const lower = raw[i].toLowerCase();
		if (HOP_BY_HOP.has(lower)) continue;
		const name = seen.get(lower);
		if (name === undefined) {
			seen.set(lower, raw[i]);
			out[raw[i]] = raw[i + 1];
		} else if (Array.isArray(out[name])) {
			out[name].push(raw[i + 1]);
		} else {
			out[name] = [out[name], raw[i + 1]];
		}
	}
	return out;
}

function sendS3Error(req, res, mode, status, code, message, extraHeaders) {
	const body = Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n' +
		`<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
	res.writeHead(status, Object.assign({ 'Content-Type': 'application/xml', 'Content-Length': body.length },
		extraHeaders || {}));
	res.end(body);
	log(mode, req, status, body.length);
}

// AWS Signature V4 of a request as received, S3 rules: the path is signed
// as sent (no normalisation, no second encoding). Returns an S3 error code,
// or null when the signature and the payload hash match.
function sigv4Check(req, body) {
	const rfc3986 = (s) => encodeURIComponent(s).replace(/[!'()*]/g,
		(c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
	const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/
		.exec(req.headers.authorization || '');
	if (!auth) return 'AccessDenied';
	const [, , date, region, service, signedHeaders, signature] = auth;
	const payloadHash = req.headers['x-amz-content-sha256'] || '';
	if (payloadHash !== 'UNSIGNED-PAYLOAD' &&
		crypto.createHash('sha256').update(body).digest('hex') !== payloadHash) {
		return 'XAmzContentSHA256Mismatch';
	}
	const q = req.url.indexOf('?');
	const path = q < 0 ? req.url : req.url.slice(0, q);
	const query = (q < 0 ? '' : req.url.slice(q + 1)).split('&').filter(Boolean).map((p) => {
		const eq = p.indexOf('=');
		const name = decodeURIComponent(eq < 0 ? p : p.slice(0, eq));
		const value = eq < 0 ? '' : decodeURIComponent(p.slice(eq + 1));
		return `${rfc3986(name)}=${rfc3986(value)}`;
	}).sort().join('&');
	const names = signedHeaders.split(';');
	const headers = names.map((n) => `${n}:${String(req.headers[n] || '').trim().replace(/\s+/g, ' ')}\n`).join('');
	const canonical = [req.method, path, query, headers, signedHeaders, payloadHash].join('\n');
	const scope = `${date}/${region}/${service}/aws4_request`;
	const toSign = ['AWS4-HMAC-SHA256', req.headers['x-amz-date'] || '', scope,
		crypto.createHash('sha256').update(canonical).digest('hex')].join('\n');
	const hmac = (key, msg) => crypto.createHmac('sha256', key).update(msg).digest();
	let key = hmac(`AWS4${opts.sigv4Secret}`, date);
	for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
	return hmac(key, toSign).toString('hex') === signature ? null : 'SignatureDoesNotMatch';
}

function sendJson(req, res, mode, status, obj) {
	const body = Buffer.from(JSON.stringify(obj));
	res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
	res.end(body);
	log(mode, req, status, body.length);
}

// Forward one request with its buffered body; retry once when a reused
// keep-alive connection turns out to have been closed by the upstream.
function forward(req, body, retried, cb) {
	const headers = headerObject(req.rawHeaders);
	const hasBody = body.length > 0 || req.headers['content-length'] !== undefined ||
		req.headers['transfer-encoding'] !== undefined;
	if (hasBody) headers['Content-Length'] = body.length;
	const up = http.request({
		host: opts.upstreamHost,
		port: opts.upstreamPort,
		method: req.method,
		path: req.url,
		headers,
		agent,
	});
	let done = false;
	const finish = (err, upRes, upBody) => {
		if (done) return;
		done = true;
		cb(err, upRes, upBody);
	};
	let gotResponse = false;
	up.on('error', (err) => {
		if (!retried && !gotResponse && up.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
			done = true;
			forward(req, body, true, cb);
			return;
		}
		finish(err);
	});
	up.on('response', (upRes) => {
		gotResponse = true;
		const chunks = [];
		upRes.on('data', (c) => chunks.push(c));
		upRes.on('end', () => {
			if (upRes.complete) finish(null, upRes, Buffer.concat(chunks));
			else finish(new Error('upstream response ended early'));
		});
		upRes.on('error', (err) => finish(err));
		upRes.on('aborted', () => finish(new Error('upstream response aborted')));
	});
	up.end(body);
}

function bodyless(req, status) {
	return req.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

function handle(req, res) {
	const mode = modeFor(req.url);

	if (mode === 'reset') {
		altered++;
		log(mode, req, '-', 0);
		if (typeof req.socket.resetAndDestroy === 'function') req.socket.resetAndDestroy();
		else req.socket.destroy();
		return;
	}
	if (mode === 'stall') {
		altered++;
		log(mode, req, '-', 0);
		req.resume(); // read the body so the client is not blocked sending it
		return;
	}

	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('error', () => {});
	req.on('end', () => {
		if (mode === 'error503') {
			altered++;
			sendJson(req, res, mode, 503, { error: 'unavailable', message: 'fault proxy' });
			return;
		}
		if (mode === 'status500') {
			altered++;
			sendS3Error(req, res, mode, 500, 'InternalError', 'fault proxy: internal error');
			return;
		}
		if (mode === 'slowdown503') {
			altered++;
			sendS3Error(req, res, mode, 503, 'SlowDown', 'fault proxy: please reduce your request rate',
				{ 'Retry-After': '1' });
			return;
		}
		if (mode === 'sigv4') {
			if (opts.sigv4Secret === undefined) {
				warn('mode sigv4 needs --sigv4-secret; passing');
			} else {
				const code = sigv4Check(req, Buffer.concat(chunks));
				if (code !== null) {
					sendS3Error(req, res, mode, 403, code, 'fault proxy: signature check failed');
					return;
				}
			}
		}
		forward(req, Buffer.concat(chunks), false, (err, upRes, upBody) => {
			if (res.destroyed || res.headersSent) return; // the client went away
			if (err) {
				sendJson(req, res, mode, 502, {
					error: 'bad_gateway',
					message: `fault proxy: upstream ${upstreamName}: ${err.code || err.message}`,
				});
				return;
			}
			const status = upRes.statusCode;
			const headers = headerObject(upRes.rawHeaders);
			if (bodyless(req, status)) {
				// No body to alter; keep the upstream's Content-Length (HEAD).
				if (upRes.headers['content-length'] !== undefined) {
					headers['Content-Length'] = upRes.headers['content-length'];
				}
				res.writeHead(status, upRes.statusMessage, headers);
				res.end();
				log(mode, req, status, 0);
				return;
			}
			let body = upBody;
			if (mode === 'corrupt' && body.length > 0) {
				body = Buffer.from(body);
				body[crypto.randomInt(body.length)] ^= 1 << crypto.randomInt(8);
				altered++;
			} else if (mode === 'garbage' && body.length > 0) {
				body = crypto.randomBytes(body.length);
				altered++;
			}
			headers['Content-Length'] = body.length;
			res.writeHead(status, upRes.statusMessage, headers);
			if (mode === 'truncate') {
				const half = body.subarray(0, Math.floor(body.length / 2));
				if (body.length > 0) altered++;
				log(mode, req, status, half.length);
				// Headers and half the body, then FIN and close: the client
				// sees the connection end short of Content-Length.
				const sock = req.socket;
				res.flushHeaders();
				if (half.length > 0) res.write(half);
				sock.end();
				sock.once('finish', () => sock.destroy());
				return;
			}
			res.end(body);
			log(mode, req, status, body.length);
		});
	});
}

const server = http.createServer(handle);
// Never time a connection out ourselves: a stalled request must stay open
// until the client gives up.
server.requestTimeout = 0;
server.headersTimeout = 0;
server.timeout = 0;
server.keepAliveTimeout = 30000;
server.on('clientError', (err, socket) => {
	if (err.code === 'ECONNRESET' || !socket.writable) {
		socket.destroy();
		return;
	}
	socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
});
server.on('error', (err) => {
	process.stderr.write(`faultproxy: cannot listen on 127.0.0.1:${opts.listen}: ${err.message}\n`);
	process.exit(1);
});
server.listen(opts.listen, '127.0.0.1', () => {
	process.stdout.write(`listening ${server.address().port}\n`);
});

function stop() {
	process.stdout.write(`altered ${altered}\n`, () => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
