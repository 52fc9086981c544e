// Just enough AMQP 0-9-1 (no dependencies) to hold a connection with one
// consumer open while the UI test takes screenshots, so the connections,
// channels and consumers views have something to show.
//
//   const c = await openConsumer('amqp://guest:guest@127.0.0.1:5672/', 'queue-name', { prefetch: 10 });
//   ...
//   await c.close();
//
// The queue is declared exclusive and auto-delete: it goes with the connection.
import net from 'node:net';

const FRAME_END = 0xce;

function shortstr(s) {
  const b = Buffer.from(s, 'utf8');
  if (b.length > 255) throw new Error('shortstr too long');
  return Buffer.concat([Buffer.from([b.length]), b]);
}
function longstr(s) {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
  const n = Buffer.alloc(4);
  n.writeUInt32BE(b.length);
  return Buffer.concat([n, b]);
}
function u8(v) {
  return Buffer.from([v]);
}
function u16(v) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}
function u32(v) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
}
function table(obj) {
  const parts = [];
  for (const [k, v] of Object.entries(obj)) {
    parts.push(shortstr(k));
    if (typeof v === 'boolean') parts.push(Buffer.from('t'), u8(v ? 1 : 0));
    else if (typeof v === 'object') parts.push(Buffer.from('F'), table(v));
    else parts.push(Buffer.from('S'), longstr(String(v)));
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([u32(body.length), body]);
}
function methodFrame(channel, classId, methodId, args) {
  const payload = Buffer.concat([u16(classId), u16(methodId), ...args]);
  return Buffer.concat([u8(1), u16(channel), u32(payload.length), payload, u8(FRAME_END)]);
}

export async function openConsumer(url, queue, { prefetch = 10, connectionName = 'ringmq UI test' } = {}) {
  const u = new URL(url);
  if (u.protocol !== 'amqp:') throw new Error(`amqp-mini: only amqp:// URLs (got ${url})`);
  const user = decodeURIComponent(u.username || 'guest');
  const pass = decodeURIComponent(u.password || 'guest');
  const vhost = u.pathname && u.pathname !== '/' ? decodeURIComponent(u.pathname.slice(1)) : '/';
  const sock = net.connect({ host: u.hostname, port: Number(u.port || 5672) });
  sock.setNoDelay(true);

  let buf = Buffer.alloc(0);
  const waiting = []; // {classId, methodId, resolve, reject}
  let failed = null;
  let onClosed;
  const closed = new Promise((r) => (onClosed = r));
  function fail(err) {
    if (failed) return;
    failed = err;
    onClosed(err.message);
    for (const w of waiting.splice(0)) w.reject(err);
    sock.destroy();
  }
  sock.on('error', (e) => fail(new Error(`amqp-mini: ${e.message}`)));
  sock.on('close', () => fail(new Error('amqp-mini: connection closed by the server')));
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 8) {
      if (buf[0] === 0x41) return fail(new Error('amqp-mini: server refused the protocol version'));
      const type = buf[0];
      const channel = buf.readUInt16BE(1);
      const size = buf.readUInt32BE(3);
      if (buf.length < 8 + size) return;
      const payload = buf.subarray(7, 7 + size);
      buf = buf.subarray(8 + size);
      if (type === 8) {
        sock.write(Buffer.from([8, 0, 0, 0, 0, 0, 0, FRAME_END])); // heartbeat back
        continue;
      }
      if (type !== 1) continue; // content frames: not expected (no messages on the queue)
      const classId = payload.readUInt16BE(0);
      const methodId = payload.readUInt16BE(2);
      if ((classId === 10 && methodId === 50) || (classId === 20 && methodId === 40)) {
        const code = payload.readUInt16BE(4);
        const text = payload.subarray(7, 7 + payload[6]).toString();
        // answer close-ok, then give up
        sock.write(methodFrame(channel, classId, methodId + 1, []));
        return fail(new Error(`amqp-mini: server closed ${classId === 10 ? 'the connection' : 'the channel'}: ${code} ${text}`));
      }
      const i = waiting.findIndex((w) => w.classId === classId && w.methodId === methodId);
      if (i >= 0) waiting.splice(i, 1)[0].resolve(payload);
    }
  });
  function expect(classId, methodId) {
    if (failed) return Promise.reject(failed);
    return new Promise((resolve, reject) => {
      const w = { classId, methodId, resolve, reject };
      waiting.push(w);
      setTimeout(() => reject(new Error(`amqp-mini: no answer ${classId}.${methodId} within 10 s`)), 10000).unref();
    });
  }

  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const start = expect(10, 10);
  sock.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'));
  await start;
  const tune = expect(10, 30);
  sock.write(methodFrame(0, 10, 11, [
    table({ product: 'ringmq-ui-test', version: '1', platform: `node ${process.version}`, connection_name: connectionName, capabilities: { consumer_cancel_notify: true } }),
    shortstr('PLAIN'),
    longstr(`\0${user}\0${pass}`),
    shortstr('en_US'),
  ]));
  const t = await tune;
  const channelMax = t.readUInt16BE(4) || 2047;
  const frameMax = t.readUInt32BE(6) || 131072;
  const openOk = expect(10, 41);
  sock.write(methodFrame(0, 10, 31, [u16(Math.min(channelMax, 16)), u32(frameMax), u16(0)]));
  sock.write(methodFrame(0, 10, 40, [shortstr(vhost), shortstr(''), u8(0)]));
  await openOk;
  const chOk = expect(20, 11);
  sock.write(methodFrame(1, 20, 10, [shortstr('')]));
  await chOk;
  const declOk = expect(50, 11);
  // passive=0 durable=0 exclusive=1 auto-delete=1 no-wait=0
  sock.write(methodFrame(1, 50, 10, [u16(0), shortstr(queue), u8(0b01100), table({})]));
  await declOk;
  const qosOk = expect(60, 11);
  sock.write(methodFrame(1, 60, 10, [u32(0), u16(prefetch), u8(0)]));
  await qosOk;
  const consOk = expect(60, 21);
  sock.write(methodFrame(1, 60, 20, [u16(0), shortstr(queue), shortstr('ui-test-consumer'), u8(0), table({})]));
  await consOk;

  return {
    queue,
    // resolves with the reason when the server ends the connection
    closed,
    async close() {
      if (failed) return;
      const closeOk = expect(10, 51).catch(() => {});
      sock.write(methodFrame(0, 10, 50, [u16(200), shortstr('bye'), u16(0), u16(0)]));
      await closeOk;
      if (!failed) {
        failed = new Error('amqp-mini: closed by the client');
        onClosed(failed.message);
      }
      sock.destroy();
    },
  };
}
