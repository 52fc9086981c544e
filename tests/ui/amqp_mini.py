"""Just enough AMQP 0-9-1 (standard library only) to hold a connection with one
consumer open while the UI test takes screenshots, so the connections,
channels and consumers views have something to show, and to see the reason
when the server closes the connection (the UI's close-connection form).

    c = open_consumer('amqp://guest:guest@127.0.0.1:5672/', 'queue-name', prefetch=10)
    ...
    c.wait_closed(10)   # the reason the server gave, or None while still open
    c.close()

The queue is declared exclusive and auto-delete: it goes with the connection.
A reader thread answers heartbeats and the server's close.
"""

import platform
import socket
import struct
import threading
import time
from urllib.parse import unquote, urlsplit

FRAME_END = 0xCE


class AmqpError(Exception):
    pass


def _shortstr(s):
    b = s.encode('utf-8')
    if len(b) > 255:
        raise AmqpError('shortstr too long')
    return bytes([len(b)]) + b


def _longstr(s):
    b = s if isinstance(s, bytes) else s.encode('utf-8')
    return struct.pack('>I', len(b)) + b


def _table(d):
    parts = []
    for k, v in d.items():
        parts.append(_shortstr(k))
        if isinstance(v, bool):
            parts.append(b't' + bytes([1 if v else 0]))
        elif isinstance(v, dict):
            parts.append(b'F' + _table(v))
        else:
            parts.append(b'S' + _longstr(str(v)))
    body = b''.join(parts)
    return struct.pack('>I', len(body)) + body


def _method_frame(channel, class_id, method_id, *args):
    payload = struct.pack('>HH', class_id, method_id) + b''.join(args)
    return struct.pack('>BHI', 1, channel, len(payload)) + payload + bytes([FRAME_END])


class Consumer:
    def __init__(self, url, queue, prefetch=10, connection_name='ringmq UI test', timeout=10.0, stream=False):
        u = urlsplit(url)
        if u.scheme != 'amqp':
            raise AmqpError(f'amqp-mini: only amqp:// URLs (got {url})')
        user = unquote(u.username or 'guest')
        password = unquote(u.password or 'guest')
        vhost = unquote(u.path[1:]) if u.path and u.path != '/' else '/'
        self.queue = queue
        self.timeout = timeout
        self._cond = threading.Condition()
        self._frames = []  # (class_id, method_id, payload) not yet taken
        self._failed = None  # reason string once the connection is gone
        self._closed = threading.Event()
        self._wlock = threading.Lock()
        self._sock = socket.create_connection((u.hostname or '127.0.0.1', u.port or 5672), timeout=timeout)
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = threading.Thread(target=self._read_loop, name='amqp-mini', daemon=True)
        self._reader.start()
        try:
            self._send(b'AMQP\x00\x00\x09\x01')
            self._expect(10, 10)  # start
            self._send(_method_frame(0, 10, 11,
                                     _table({'product': 'ringmq-ui-test', 'version': '1',
                                             'platform': f'python {platform.python_version()}',
                                             'connection_name': connection_name,
                                             'capabilities': {'consumer_cancel_notify': True}}),
                                     _shortstr('PLAIN'), _longstr(f'\0{user}\0{password}'), _shortstr('en_US')))
            tune = self._expect(10, 30)
            channel_max, frame_max = struct.unpack_from('>HI', tune, 4)
            # heartbeat 0: none asked for (the server's are still answered)
            self._send(_method_frame(0, 10, 31, struct.pack('>HIH', min(channel_max or 2047, 16), frame_max or 131072, 0)))
            self._send(_method_frame(0, 10, 40, _shortstr(vhost), _shortstr(''), b'\x00'))
            self._expect(10, 41)
            self._send(_method_frame(1, 20, 10, _shortstr('')))
            self._expect(20, 11)
            # passive=0 durable=0 exclusive=1 auto-delete=1 no-wait=0; a
            # stream is durable only, and read from its first message (what
            # is delivered stays unacked: the prefetch stops the reader)
            flags, qargs = (0b00010, {'x-queue-type': 'stream'}) if stream else (0b01100, {})
            cargs = {'x-stream-offset': 'first'} if stream else {}
            self._send(_method_frame(1, 50, 10, struct.pack('>H', 0), _shortstr(queue), bytes([flags]), _table(qargs)))
            self._expect(50, 11)
            self._send(_method_frame(1, 60, 10, struct.pack('>IHB', 0, prefetch, 0)))
            self._expect(60, 11)
            self._send(_method_frame(1, 60, 20, struct.pack('>H', 0), _shortstr(queue), _shortstr('ui-test-consumer'),
                                     b'\x00', _table(cargs)))
            self._expect(60, 21)
        except BaseException:
            self._fail('amqp-mini: closed by the client')
            raise

    def _send(self, data):
        with self._wlock:
            self._sock.sendall(data)

    def _fail(self, reason):
        with self._cond:
            if self._failed is None:
                self._failed = reason
            self._cond.notify_all()
        self._closed.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass

    def _read_loop(self):
        buf = b''
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    return self._fail('amqp-mini: connection closed by the server')
                buf += data
                while len(buf) >= 8:
                    if buf[0] == 0x41:  # 'AMQP': protocol header back
                        return self._fail('amqp-mini: server refused the protocol version')
                    ftype, channel, size = struct.unpack_from('>BHI', buf, 0)
                    if len(buf) < 8 + size:
                        break
                    payload = buf[7:7 + size]
                    buf = buf[8 + size:]
                    if ftype == 8:
                        self._send(bytes([8, 0, 0, 0, 0, 0, 0, FRAME_END]))  # heartbeat back
                        continue
                    if ftype != 1:
                        continue  # content frames: the bodies of a stream's deliveries, not looked at
                    class_id, method_id = struct.unpack_from('>HH', payload, 0)
                    if (class_id, method_id) in ((10, 50), (20, 40)):
                        code = struct.unpack_from('>H', payload, 4)[0]
                        text = payload[7:7 + payload[6]].decode('utf-8', 'replace')
                        try:
                            self._send(_method_frame(channel, class_id, method_id + 1))  # close-ok
                        except OSError:
                            pass
                        what = 'the connection' if class_id == 10 else 'the channel'
                        return self._fail(f'amqp-mini: server closed {what}: {code} {text}')
                    with self._cond:
                        self._frames.append((class_id, method_id, payload))
                        self._cond.notify_all()
        except OSError as e:
            self._fail(f'amqp-mini: {e}')

    def _expect(self, class_id, method_id):
        end = time.monotonic() + self.timeout
        with self._cond:
            while True:
                for i, (c, m, p) in enumerate(self._frames):
                    if (c, m) == (class_id, method_id):
                        del self._frames[i]
                        return p
                if self._failed is not None:
                    raise AmqpError(self._failed)
                left = end - time.monotonic()
                if left <= 0:
                    raise AmqpError(f'amqp-mini: no answer {class_id}.{method_id} within {self.timeout:g} s')
                self._cond.wait(left)

    def wait_closed(self, timeout):
        """The reason the connection ended, or None if it is still open after timeout seconds."""
        if self._closed.wait(timeout):
            return self._failed
        return None

    def close(self):
        if self._failed is not None:
            return
        try:
            self._send(_method_frame(0, 10, 50, struct.pack('>H', 200), _shortstr('bye'), struct.pack('>HH', 0, 0)))
            self._expect(10, 51)
        except (AmqpError, OSError):
            pass
        self._fail('amqp-mini: closed by the client')


def open_consumer(url, queue, prefetch=10, connection_name='ringmq UI test', stream=False):
    return Consumer(url, queue, prefetch=prefetch, connection_name=connection_name, stream=stream)
