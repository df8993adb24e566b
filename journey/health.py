"""/metrics, /healthz and /readyz on one small HTTP server thread, bound where configured."""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
        pass


class _ThreadingServer(WSGIServer):
    daemon_threads = True


def serve(registry: CollectorRegistry, host: str, port: int, ready: Callable[[], bool]) -> WSGIServer:
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok = ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ready\n" if ok else b"starting or rebalancing\n"]
        return metrics_app(environ, start_response)

    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="journey-metrics", daemon=True).start()
    return server
