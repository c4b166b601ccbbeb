"""A loopback TCP proxy for tests that break a link on purpose.

It forwards bytes between clients and one target (a broker, a reader simulator)
and can discard one direction, reset new connections at once, or cut every open
connection with a TCP reset, as a dying network or a pulled cable would.
"""

from __future__ import annotations

import socket
import struct
import threading


def _abort(sock: socket.socket) -> None:
    """Close a socket with a TCP reset instead of an orderly FIN."""
    try:
        # SO_LINGER on with a zero timeout makes close() send RST.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # A thread blocked in recv() keeps the socket alive past close() on
        # Linux; shutting down the read side wakes it without sending anything.
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class TcpProxy:
    """Forward 127.0.0.1:`port` to `target_host`:`target_port`, with faults on request.

    `drop_to_client` discards what the target sends (a PUBACK, say) while the
    other direction still flows, and `drop_to_server` is the reverse.
    `reject_connections` resets new connections at once. `cut()` resets every
    open connection.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.drop_to_client = False
        self.drop_to_server = False
        self.reject_connections = False
        self.accepted = 0
        self.dropped_bytes = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._accept_loop, name="tcpproxy", daemon=True
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def cut(self) -> int:
        """Reset every open connection; return how many sockets were closed."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _abort(sock)
        return len(sockets)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self._listener.close()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self.reject_connections:
                _abort(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _abort(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
                self.accepted += 1
            for source, sink, to_client in (
                (client, server, False),
                (server, client, True),
            ):
                threading.Thread(
                    target=self._pump, args=(source, sink, to_client), daemon=True
                ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, to_client: bool
    ) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self.drop_to_client if to_client else self.drop_to_server:
                    self.dropped_bytes += len(data)
                    continue
                sink.sendall(data)
        except OSError:
            pass
        # One side ended or failed: end the other too, as a real path would.
        with self._lock:
            for sock in (source, sink):
                if sock in self._sockets:
                    self._sockets.remove(sock)
        _abort(source)
        _abort(sink)
