"""The optional Prometheus endpoint: the status document, read at scrape time, as metrics."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import platform
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import ThreadingWSGIServer

from pingu import __version__
from pingu.domain.errors import PinguError

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 5.0
ROUTED_STATES = ("up", "failing")  # the states in which an uplink carries its route

StatusSource = Callable[[], Mapping[str, Any]]
# The status page at `/`: (status document or None, stale, wall-clock now) -> HTML.
PageRenderer = Callable[[Mapping[str, Any] | None, bool, float], str]
PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    # The page needs nothing but its inline style: no script, no frame, no form, no
    # request anywhere, whatever the status says.
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]

# (metric name without _total, help, key in the uplink's counters)
COUNTERS = (
    ("pingu_uplink_rounds", "Probe rounds started on the uplink.", "rounds"),
    ("pingu_uplink_echoes_sent", "ICMP echo requests sent through the uplink.", "echoes_sent"),
    ("pingu_uplink_echoes_lost", "Echo requests that got no reply in time.", "echoes_lost"),
    (
        "pingu_uplink_echoes_abandoned",
        "Echo requests not waited for: the round's verdict was certain before their timeout.",
        "echoes_abandoned",
    ),
    ("pingu_uplink_state_changes", "Health state changes of the uplink.", "state_changes"),
    ("pingu_uplink_reset_script_runs", "Runs of the uplink's reset script.", "reset_script_runs"),
    ("pingu_uplink_route_changes", "Installs and removals of the uplink's route.", "route_changes"),
    (
        "pingu_uplink_conntrack_deleted",
        "Conntrack entries deleted when traffic left the uplink (NATed to or sent from it).",
        "conntrack_deleted",
    ),
    (
        "pingu_uplink_sockets_destroyed",
        "The box's own TCP connections destroyed when traffic left the uplink.",
        "sockets_destroyed",
    ),
)


class MetricsError(PinguError):
    """The metrics endpoint cannot be served; the daemon must not start."""


class StatusCollector:
    """A prometheus_client collector that asks the daemon for its status at each scrape.

    Scrapes run on the HTTP server's threads while the status belongs to the event loop:
    the document is fetched on the loop, with a short timeout; when the loop does not
    answer in time, the last good document is served and `pingu_status_stale` says so.
    """

    def __init__(
        self,
        status: StatusSource,
        loop: asyncio.AbstractEventLoop,
        timeout: float = SCRAPE_TIMEOUT_S,
    ) -> None:
        self._status = status
        self._loop = loop
        self._timeout = timeout
        self._lock = threading.Lock()
        self._last: Mapping[str, Any] | None = None

    def describe(self) -> list[Metric]:
        # Nothing to check at registration: collect() must not run on the loop's thread.
        return []

    def collect(self) -> Iterator[Metric]:
        document, stale = self._document()
        info = InfoMetricFamily("pingu_build", "pingu's version and the Python that runs it.")
        info.add_metric([], {"version": __version__, "python": platform.python_version()})
        yield info
        yield GaugeMetricFamily(
            "pingu_status_stale",
            "1 when the daemon did not answer this scrape in time and older values are served.",
            value=1.0 if stale else 0.0,
        )
        if document is not None:
            yield from uplink_metrics(document)

    def document(self) -> tuple[Mapping[str, Any] | None, bool]:
        """The daemon's status document (or the last one, stale), from any thread."""
        return self._document()

    def _document(self) -> tuple[Mapping[str, Any] | None, bool]:
        future = asyncio.run_coroutine_threadsafe(self._fetch(), self._loop)
        try:
            document = future.result(self._timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            log.warning("metrics: no status within %.1f s; serving the last one", self._timeout)
            with self._lock:
                return self._last, True
        except Exception:
            log.exception("metrics: status failed; serving the last one")
            with self._lock:
                return self._last, True
        with self._lock:
            self._last = document
        return document, False

    async def _fetch(self) -> Mapping[str, Any]:
        return self._status()


def uplink_metrics(document: Mapping[str, Any]) -> Iterator[Metric]:
    """The metrics of one status document."""
    uplinks: Sequence[Mapping[str, Any]] = document.get("uplinks") or []
    labels = ["uplink", "family"]
    gauges = {
        "up": GaugeMetricFamily(
            "pingu_uplink_up",
            "1 when the uplink is up (or failing but still routed), 0 when down or rising.",
            labels=labels,
        ),
        "route": GaugeMetricFamily(
            "pingu_uplink_route_installed",
            "1 when pingu's default route for the uplink is in the table.",
            labels=labels,
        ),
        "loss": GaugeMetricFamily(
            "pingu_uplink_last_loss_ratio",
            "Share of the last round's echoes waited for that were lost (NaN before any).",
            labels=labels,
        ),
        "delay": GaugeMetricFamily(
            "pingu_uplink_last_delay_seconds",
            "Average delay of the last round's replies, over all targets (NaN if none).",
            labels=labels,
        ),
    }
    counters = [
        (CounterMetricFamily(name, text, labels=labels), key) for name, text, key in COUNTERS
    ]
    for uplink, path in _paths(uplinks):
        label = [str(uplink.get("name")), str(path.get("family", "ipv4"))]
        gauges["up"].add_metric(label, 1.0 if path.get("state") in ROUTED_STATES else 0.0)
        gauges["route"].add_metric(label, 1.0 if path.get("route_installed") else 0.0)
        loss, delay = last_round_figures(path.get("last_round"))
        gauges["loss"].add_metric(label, loss)
        gauges["delay"].add_metric(label, delay)
        values = path.get("counters") or {}
        for metric, key in counters:
            metric.add_metric(label, float(values.get(key, 0)))
    yield from gauges.values()
    yield from (metric for metric, _ in counters)
    all_down = GaugeMetricFamily(
        "pingu_all_down",
        "1 when every uplink is down in the family (see when_all_down for what is kept).",
        labels=["family"],
    )
    families: Mapping[str, Any] = document.get("families") or {
        "ipv4": {"all_down": document.get("all_down")}
    }
    for family, state in families.items():
        all_down.add_metric([str(family)], 1.0 if (state or {}).get("all_down") else 0.0)
    yield all_down


def _paths(
    uplinks: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Each uplink with each of its families' sections (a version-1 document: the uplink)."""
    for uplink in uplinks:
        families: Mapping[str, Mapping[str, Any]] = uplink.get("families") or {}
        if not families:
            yield uplink, uplink
        for path in families.values():
            yield uplink, path


def last_round_figures(last_round: Mapping[str, Any] | None) -> tuple[float, float]:
    """(loss ratio, average delay in seconds) of a round; NaN where there is nothing to say.

    The delay is averaged over every reply of every target, as the verdict does.
    """
    targets = (last_round or {}).get("targets") or []
    waited = sum(int(t.get("sent") or 0) - int(t.get("abandoned") or 0) for t in targets)
    lost = sum(int(t.get("lost") or 0) for t in targets)
    loss = lost / waited if waited else math.nan
    replies = 0
    total_ms = 0.0
    for target in targets:
        answered = (
            int(target.get("sent") or 0)
            - int(target.get("lost") or 0)
            - int(target.get("abandoned") or 0)
        )
        if answered > 0 and target.get("avg_ms") is not None:
            replies += answered
            total_ms += float(target["avg_ms"]) * answered
    delay = total_ms / replies / 1000.0 if replies else math.nan
    return loss, delay


class MetricsServer:
    """prometheus_client's metrics at `/metrics` of an HTTP server on `host:port`, on a
    private registry; the status page at `/` when a renderer is given; 404 elsewhere."""

    def __init__(
        self, host: str, port: int, status: StatusSource, page: PageRenderer | None = None
    ) -> None:
        self.host = host
        self.port = port
        self._status = status
        self._page = page
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen (from the event loop's thread); MetricsError when the address is taken."""
        registry = CollectorRegistry()
        collector = StatusCollector(self._status, asyncio.get_running_loop())
        registry.register(collector)
        ProcessCollector(registry=registry)
        app = Routes(make_wsgi_app(registry), collector, self._page)
        try:
            self._server = _listen(self.host, self.port, app)
        except OSError as error:
            raise MetricsError(
                f"metrics {self.host}:{self.port}: cannot listen: {error.strerror or error}"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="pingu-metrics", daemon=True
        )
        self._thread.start()
        self.port = self._server.server_port  # the real one when port 0 was asked for
        log.info("metrics: serving Prometheus metrics on http://%s:%d/metrics", *self.address)
        if self._page is not None:
            log.info("metrics: serving the status page on http://%s:%d/", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def close(self) -> None:
        """Stop serving; waits (bounded) for the server thread in a worker thread."""
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        await asyncio.to_thread(_stop, server, thread)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Routes:
    """The endpoint's paths: `/metrics` is prometheus_client's own application, as it was
    (it answers OPTIONS and refuses other methods than GET itself); `/` the status page
    (GET only, any query string ignored); everything else 404."""

    def __init__(
        self, metrics: WsgiApp, collector: StatusCollector, page: PageRenderer | None
    ) -> None:
        self._metrics = metrics
        self._collector = collector
        self._page = page

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/" and self._page is not None:
            if environ.get("REQUEST_METHOD") != "GET":
                return _plain(start_response, "405 Method Not Allowed", [("Allow", "GET")])
            document, stale = self._collector.document()
            try:
                text = self._page(document, stale, time.time())
            except Exception:
                log.exception("metrics: the status page failed")
                return _plain(start_response, "500 Internal Server Error")
            body = text.encode()
            start_response("200 OK", [*PAGE_HEADERS, ("Content-Length", str(len(body)))])
            return [body]
        return _plain(start_response, "404 Not Found")


def _plain(
    start_response: Callable[..., Any], status: str, headers: Sequence[tuple[str, str]] = ()
) -> list[bytes]:
    body = f"{status}\n".encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (prometheus_client's server logs nothing either)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _listen(host: str, port: int, app: WsgiApp) -> WSGIServer:
    """A threading WSGI server bound to host:port, IPv6 when the address is one (what
    prometheus_client's start_http_server does, with our application)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = info[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    return make_server(str(sockaddr[0]), port, app, Server, handler_class=_QuietHandler)


def _stop(server: WSGIServer, thread: threading.Thread | None) -> None:
    # shutdown() waits for serve_forever() to return; a scrape blocked on the loop would
    # otherwise hold this up, so it is done here, off the loop.
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(STOP_TIMEOUT_S)
