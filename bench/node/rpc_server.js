// The ocpp-rpc reference server: strict mode (every call and every response validated against
// the official 1.6 / 2.0.1 schemas), minimal handlers, nothing stored, nothing logged.
//   node rpc_server.js --port 9002
'use strict';
const { RPCServer, createRPCError } = require('ocpp-rpc');

const port = Number(process.argv[process.argv.indexOf('--port') + 1] || 9002);
const now = () => new Date().toISOString();
let nextTransactionId = 1;

const V16 = {
    BootNotification: () => ({ status: 'Accepted', interval: 300, currentTime: now() }),
    Heartbeat: () => ({ currentTime: now() }),
    StatusNotification: () => ({}),
    Authorize: () => ({ idTagInfo: { status: 'Accepted' } }),
    StartTransaction: () => ({ transactionId: nextTransactionId++, idTagInfo: { status: 'Accepted' } }),
    StopTransaction: () => ({ idTagInfo: { status: 'Accepted' } }),
    MeterValues: () => ({}),
};
const V201 = {
    BootNotification: () => ({ status: 'Accepted', interval: 300, currentTime: now() }),
    Heartbeat: () => ({ currentTime: now() }),
    StatusNotification: () => ({}),
    Authorize: () => ({ idTokenInfo: { status: 'Accepted' } }),
    TransactionEvent: ({ params }) => (params.idToken ? { idTokenInfo: { status: 'Accepted' } } : {}),
    MeterValues: () => ({}),
};

const server = new RPCServer({ protocols: ['ocpp1.6', 'ocpp2.0.1'], strictMode: true });
server.auth((accept) => accept());
server.on('client', (client) => {
    const table = client.protocol === 'ocpp2.0.1' ? V201 : V16;
    for (const [method, handler] of Object.entries(table)) client.handle(method, handler);
    client.handle(() => { throw createRPCError('NotImplemented'); });
});
server.listen(port, '127.0.0.1').then(() => console.log(`ocpp-rpc strict listening on ${port}`));
process.on('SIGTERM', () => server.close({ force: true }).then(() => process.exit(0)));
