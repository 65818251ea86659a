"""A local HTTP server standing in for the weights' hosts (GitHub's release, torchvision's, pytorch-fid's).

It listens on 127.0.0.1 only; tests point the download base URL at it, so nothing reaches the network.
"""
import http.server
import os
import shutil
import socket
import threading
import time

from weights.released import RELEASED_MODELS


def closed_port_url():
    """http://127.0.0.1:<a port nothing listens on>: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return f'http://127.0.0.1:{sock.getsockname()[1]}'


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET /<file> from the server's folder, misbehaving as `server.mode` says."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server.weights_server
        server.requests.append(self.path)
        if server.mode == 'redirect_loop':
            self.send_response(302)
            self.send_header('Location', self.path)
            self.end_headers()
            return
        if server.mode == 'endless':  # no Content-Length, zeros until the client hangs up
            self.send_response(200)
            self.end_headers()
            self.close_connection = True
            try:
                while True:
                    self.wfile.write(bytes(1 << 20))
            except (BrokenPipeError, ConnectionResetError):
                return
        path = os.path.join(server.folder, os.path.normpath(self.path.lstrip('/')))
        if server.mode == 'missing' or '..' in self.path or not os.path.isfile(path):
            self.send_error(404, 'Not Found')
            return
        if server.mode == 'slow':
            time.sleep(server.delay)
        with open(path, 'rb') as f:
            body = f.read()
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(server.announced or len(body)))
        self.end_headers()
        if server.mode == 'cut':
            body = body[:len(body) // 2]
            self.close_connection = True
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class WeightsServer:
    """An HTTP server on 127.0.0.1 in a thread, serving `folder` (subfolders too); records the paths it is asked for.

    `mode`: 'ok', 'missing' (404 for everything), 'cut' (closes after half of each file), 'slow'
    (waits `delay` seconds before answering), 'redirect_loop' (every path redirects to itself) or
    'endless' (zeros without a Content-Length until the client hangs up). `announced`, when set, is
    the Content-Length sent whatever the file's size.
    """

    def __init__(self, folder):
        self.folder = folder
        self.requests = []
        self.mode = 'ok'
        self.delay = 2.0
        self.announced = None
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.weights_server = self
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, source, file_name):
        """Serve the file `source` as `file_name`, which may hold folders (a hard link where possible: the HD files
        are 350 MB)."""
        target = os.path.join(self.folder, file_name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return target

    def add_released(self, name, source):
        """Serve `source` (e.g. random weights of that format) as the released model `name`'s file."""
        return self.add(source, RELEASED_MODELS[name].file_name)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
