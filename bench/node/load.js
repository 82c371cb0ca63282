// Raw OCPP-J load generator: plain `ws` sockets and hand-built frames, so it stays far below
// the servers it measures (no client-side validation, no RPC library).
//
//   node load.js --url ws://127.0.0.1:9000/ocpp --stations 1000 --mode closed --duration 30
//   node load.js --url ... --stations 10000 --mode connect       # then waits for stdin EOF
//
// Each station connects (subprotocol ocpp1.6 or ocpp2.0.1), boots and starts a transaction
// (1.6 StartTransaction; 2.0.1 TransactionEvent Started when --tx-event is given). Modes:
//  closed:  every station then alternates Heartbeat and MeterValues (2.0.1 with --tx-event:
//           TransactionEvent Updated carrying the meter values) for --duration seconds, sending
//           the next call as soon as the previous one is answered (closed loop, one call in
//           flight per station), half the stations starting with each action.
//  connect: measures how long connecting, booting and starting takes for all stations, prints
//           the result, keeps every connection open until stdin closes (so the caller can read
//           the server's memory), then closes them.
// Output: one JSON line on stdout (`result`). Every reply that is not a CALLRESULT, every
// timeout and every connection lost counts as an error.
'use strict';
const WebSocket = require('ws');

function arg(name, fallback) {
    const i = process.argv.indexOf('--' + name);
    if (i < 0) return fallback;
    const next = process.argv[i + 1];
    return next === undefined || next.startsWith('--') ? true : next;
}
const URL_BASE = arg('url', 'ws://127.0.0.1:9000/ocpp');
const STATIONS = Number(arg('stations', 1000));
const MODE = arg('mode', 'closed');
const DURATION = Number(arg('duration', 30));
const VERSION = arg('version', '1.6');
const TX_EVENT = arg('tx-event', false) === true;
const CONNECT_CONCURRENCY = Number(arg('connect-concurrency', 200));
const CALL_TIMEOUT_MS = Number(arg('call-timeout', 30)) * 1000;
const PREFIX = arg('prefix', 'LOAD');
const V201 = VERSION === '2.0.1';

const latencies = [];
const errors = {};
let measuring = false;
let answered = 0;
let meterFramesAcked = 0;
let sampledValuesAcked = 0;

function error(kind) { errors[kind] = (errors[kind] || 0) + 1; }
const iso = () => new Date().toISOString();

class Station {
    constructor(index) {
        this.id = `${PREFIX}${String(index).padStart(5, '0')}`;
        this.index = index;
        this.seq = 0;
        this.pending = null; // [uniqueId, resolve, reject, started, timer]
        this.energy = 1000;
        this.txSeq = 0;
        this.transactionId = null;
    }

    open() {
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(`${URL_BASE}/${this.id}`, [V201 ? 'ocpp2.0.1' : 'ocpp1.6'],
                { perMessageDeflate: false, handshakeTimeout: 60000 });
            this.ws = ws;
            ws.once('open', () => resolve());
            ws.once('error', (e) => reject(e));
            ws.on('message', (data) => this.onMessage(data));
            ws.on('close', () => {
                if (this.pending) { this.pending[2](new Error('closed')); this.pending = null; }
                this.closed = true;
            });
        });
    }

    onMessage(data) {
        let msg;
        try { msg = JSON.parse(data); } catch { error('bad_json'); return; }
        if (msg[0] === 2) { // a call from the server: answer it generically
            this.ws.send(JSON.stringify([3, msg[1], {}]));
            return;
        }
        const p = this.pending;
        if (!p || p[0] !== msg[1]) { error('unexpected_reply'); return; }
        this.pending = null;
        clearTimeout(p[4]);
        if (msg[0] === 3) p[1]([msg[2], p[3]]);
        else p[2](new Error(`CALLERROR ${msg[2]}: ${msg[3]}`));
    }

    call(action, payload) {
        return new Promise((resolve, reject) => {
            const id = String(++this.seq);
            const timer = setTimeout(() => {
                if (this.pending && this.pending[0] === id) { this.pending = null; reject(new Error('timeout')); }
            }, CALL_TIMEOUT_MS);
            this.pending = [id, resolve, reject, process.hrtime.bigint(), timer];
            this.ws.send(`[2,"${id}","${action}",${JSON.stringify(payload)}]`);
        });
    }

    async boot() {
        if (V201) {
            await this.call('BootNotification', { reason: 'PowerUp',
                chargingStation: { model: 'LoadModel', vendorName: 'LoadVendor' } });
            if (TX_EVENT) {
                this.transactionId = `${this.id}-tx`;
                await this.call('TransactionEvent', { eventType: 'Started', timestamp: iso(),
                    triggerReason: 'Authorized', seqNo: this.txSeq++,
                    transactionInfo: { transactionId: this.transactionId, chargingState: 'Charging' },
                    idToken: { idToken: 'LOADTAG', type: 'ISO14443' }, evse: { id: 1, connectorId: 1 },
                    meterValue: [this.meterValue201()] });
                sampledValuesAcked += 2; // the Started event's reading is stored too
            }
        } else {
            await this.call('BootNotification', { chargePointVendor: 'LoadVendor', chargePointModel: 'LoadModel' });
            const [reply] = await this.call('StartTransaction', { connectorId: 1, idTag: 'LOADTAG',
                meterStart: this.energy, timestamp: iso() });
            this.transactionId = reply.transactionId;
        }
    }

    meterValue201() {
        this.energy += 10;
        return { timestamp: iso(), sampledValue: [
            { value: this.energy, measurand: 'Energy.Active.Import.Register', unitOfMeasure: { unit: 'Wh' } },
            { value: 7200, measurand: 'Power.Active.Import', unitOfMeasure: { unit: 'W' } }] };
    }

    meterCall() {
        if (V201 && TX_EVENT) {
            return ['TransactionEvent', { eventType: 'Updated', timestamp: iso(),
                triggerReason: 'MeterValuePeriodic', seqNo: this.txSeq++,
                transactionInfo: { transactionId: this.transactionId }, meterValue: [this.meterValue201()] }];
        }
        if (V201) return ['MeterValues', { evseId: 1, meterValue: [this.meterValue201()] }];
        this.energy += 10;
        return ['MeterValues', { connectorId: 1, transactionId: this.transactionId, meterValue: [
            { timestamp: iso(), sampledValue: [
                { value: String(this.energy), measurand: 'Energy.Active.Import.Register', unit: 'Wh', context: 'Sample.Periodic' },
                { value: '7.2', measurand: 'Power.Active.Import', unit: 'kW', context: 'Sample.Periodic' }] }] }];
    }

    async loop(deadline) {
        let meter = this.index % 2 === 1;
        while (process.hrtime.bigint() < deadline && !this.closed) {
            const [action, payload] = meter ? this.meterCall() : ['Heartbeat', {}];
            try {
                const [, started] = await this.call(action, payload);
                if (measuring) {
                    latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
                    answered++;
                    if (meter) { meterFramesAcked++; sampledValuesAcked += 2; }
                }
            } catch (e) {
                error(e.message.split(':')[0]);
                if (this.closed) return;
            }
            meter = !meter;
        }
    }
}

async function pool(items, limit, fn) {
    let next = 0;
    const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
        while (next < items.length) {
            const item = items[next++];
            try { await fn(item); } catch (e) { error('setup: ' + String(e.message).split(':')[0]); item.failed = true; }
        }
    });
    await Promise.all(workers);
}

function percentile(sorted, q) {
    if (!sorted.length) return null;
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function main() {
    const stations = Array.from({ length: STATIONS }, (_, i) => new Station(i));
    const t0 = process.hrtime.bigint();
    await pool(stations, CONNECT_CONCURRENCY, async (s) => { await s.open(); await s.boot(); });
    const setupSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const ready = stations.filter((s) => !s.failed && !s.closed);
    const result = { mode: MODE, version: VERSION, txEvent: TX_EVENT, stations: STATIONS,
        ready: ready.length, setupSeconds };
    if (MODE === 'connect') {
        result.errors = errors;
        console.log(JSON.stringify(result));
        process.stdin.resume();
        await new Promise((resolve) => process.stdin.on('end', resolve).on('close', resolve));
    } else {
        measuring = true;
        const started = process.hrtime.bigint();
        const deadline = started + BigInt(Math.round(DURATION * 1e9));
        await Promise.all(ready.map((s) => s.loop(deadline)));
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        latencies.sort((a, b) => a - b);
        Object.assign(result, { seconds, answered, msgsPerSecond: answered / seconds,
            p50: percentile(latencies, 0.5), p95: percentile(latencies, 0.95),
            p99: percentile(latencies, 0.99), max: latencies[latencies.length - 1] ?? null,
            meterFramesAcked, sampledValuesAcked, errors });
        console.log(JSON.stringify(result));
    }
    for (const s of stations) if (s.ws) s.ws.terminate();
    process.exit(0);
}
main();
