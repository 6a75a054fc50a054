"""Route selection: the minimal diff, make before break."""

from __future__ import annotations

from pingu.domain.commands import (
    InstallOwnRoute,
    RemoveOwnRoute,
)
from pingu.domain.model import SCOPE_LINK
from pingu.domain.routes import own_route, route_diff


def test_gateway_less_route_is_scope_link() -> None:
    route = own_route(4, "ppp0", None, 50, 136)
    assert route.scope == SCOPE_LINK
    assert route.gateway is None


def test_nothing_to_do_when_in_place() -> None:
    route = own_route(2, "wan1", "192.0.2.1", 100, 136)
    assert route_diff(route, route) == []
    assert route_diff(None, None) == []


def test_install_and_remove() -> None:
    route = own_route(2, "wan1", "192.0.2.1", 100, 136)
    assert route_diff(None, route) == [InstallOwnRoute(route)]
    assert route_diff(route, None) == [RemoveOwnRoute(route)]


def test_new_gateway_or_metric_is_added_before_the_old_is_removed() -> None:
    old = own_route(2, "wan1", "192.0.2.1", 100, 136)
    for new in (own_route(2, "wan1", "192.0.2.9", 100, 136), own_route(2, "wan1", None, 50, 136)):
        assert route_diff(old, new) == [InstallOwnRoute(new), RemoveOwnRoute(old)]
