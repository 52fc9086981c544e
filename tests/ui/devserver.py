#!/usr/bin/env python3
"""Development server for the ringmq management UI (standard library only).

Serves src/http/ui/{index.html,app.js,style.css} at /, /app.js and /style.css
(as the broker binary does) and proxies /api/* to TARGET, so the UI is
same-origin with the API it talks to.

    python3 tests/ui/devserver.py TARGET [--port N] [--host H]
    python3 tests/ui/devserver.py http://127.0.0.1:15673             # RabbitMQ
    python3 tests/ui/devserver.py http://127.0.0.1:15672 --port 8090  # ringmq

The UI files are read on every request, so edits show on reload. --port 0
picks a free port (printed on the first line).
"""

import http.client
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
UI_DIR = os.path.normpath(os.path.join(HERE, '..', '..', 'src', 'http', 'ui'))

FILES = {
    '/': ('index.html', 'text/html; charset=utf-8'),
    '/index.html': ('index.html', 'text/html; charset=utf-8'),
    '/app.js': ('app.js', 'text/javascript; charset=utf-8'),
    '/style.css': ('style.css', 'text/css; charset=utf-8'),
}

# strict on purpose: the UI must keep working without inline scripts or styles
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

HOP = {'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te', 'trailer',
       'proxy-authorization', 'proxy-authenticate', 'content-length'}


def usage(msg=None):
    if msg:
        print(f'devserver: {msg}', file=sys.stderr)
    print('usage: python3 tests/ui/devserver.py TARGET_BASE_URL [--port N] [--host H]', file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    target, port, host = None, 8089, '127.0.0.1'
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == '--port':
            i += 1
            try:
                port = int(argv[i])
            except (IndexError, ValueError):
                usage('bad --port')
        elif a == '--host':
            i += 1
            if i >= len(argv):
                usage('--host needs a value')
            host = argv[i]
        elif a in ('-h', '--help'):
            usage()
        elif target is None:
            target = a
        else:
            usage(f'unexpected argument {a}')
        i += 1
    if target is None:
        usage('missing TARGET_BASE_URL')
    if not 0 <= port <= 65535:
        usage('bad --port')
    t = urlsplit(target)
    if t.scheme not in ('http', 'https') or not t.hostname:
        usage(f'bad TARGET_BASE_URL {target}')
    return target, t, port, host


def make_handler(target, t):
    base_path = t.path.rstrip('/')
    conn_class = http.client.HTTPSConnection if t.scheme == 'https' else http.client.HTTPConnection
    netloc = t.netloc.rsplit('@', 1)[-1]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        server_version = 'ringmq-devserver'

        def log_message(self, fmt, *args):  # quiet: one line per failed proxy call only
            pass

        def _send(self, status, headers, body):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            no_body = self.command == 'HEAD' or status in (204, 304) or 100 <= status < 200
            if not no_body or self.command == 'HEAD':
                self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            if not no_body:
                self.wfile.write(body)

        def _read_body(self):
            if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b';', 1)[0].strip() or b'0', 16)
                    if size == 0:
                        while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                            pass
                        return b''.join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            n = int(self.headers.get('Content-Length') or 0)
            return self.rfile.read(n) if n else b''

        def _proxy(self):
            body = self._read_body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            headers['Host'] = netloc
            if body or self.command in ('POST', 'PUT', 'PATCH'):
                headers['Content-Length'] = str(len(body))
            conn = conn_class(t.hostname, t.port, timeout=60)
            try:
                conn.request(self.command, base_path + self.path, body=body or None, headers=headers)
                up = conn.getresponse()
                data = up.read()
                out = [(k, v) for k, v in up.getheaders() if k.lower() not in HOP]
                self._send(up.status, out, data)
            except (OSError, http.client.HTTPException) as e:
                msg = json.dumps({'error': 'bad_gateway', 'reason': f'devserver: {target}: {e}'}).encode()
                self._send(502, [('Content-Type', 'application/json')], msg)
            finally:
                conn.close()

        def _handle(self):
            path = self.path.split('?', 1)[0]
            if path == '/api' or path.startswith('/api/'):
                return self._proxy()
            f = FILES.get(path)
            if f is None or self.command not in ('GET', 'HEAD'):
                self._read_body()
                return self._send(404, [('Content-Type', 'text/plain')], b'not found\n')
            try:
                with open(os.path.join(UI_DIR, f[0]), 'rb') as fh:
                    body = fh.read()
            except OSError as e:
                return self._send(500, [('Content-Type', 'text/plain')], f'{e}\n'.encode())
            self._send(200, [('Content-Type', f[1]), ('Cache-Control', 'no-cache'),
                             ('Content-Security-Policy', CSP), ('X-Content-Type-Options', 'nosniff')], body)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    return Handler


def main():
    target, t, port, host = parse_args(sys.argv[1:])
    server = ThreadingHTTPServer((host, port), make_handler(target, t))
    server.daemon_threads = True
    a = server.server_address
    print(f'devserver: http://{a[0]}:{a[1]}/ (UI from {UI_DIR}, /api -> {target})', flush=True)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    server.server_close()


if __name__ == '__main__':
    main()
