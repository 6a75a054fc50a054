"""Route selection: the route an uplink should have, and the minimal diff to get there."""

from __future__ import annotations

from pingu.domain.commands import InstallRoute, RemoveRoute
from pingu.domain.model import MAIN_TABLE, SCOPE_LINK, SCOPE_UNIVERSE, Route


def own_route(ifindex: int, ifname: str, gateway: str | None, metric: int, proto: int) -> Route:
    """pingu's default route for an uplink: via its gateway, or scope link without one."""
    return Route(
        ifindex=ifindex,
        ifname=ifname,
        gateway=gateway,
        metric=metric,
        proto=proto,
        table=MAIN_TABLE,
        dst_len=0,
        scope=SCOPE_UNIVERSE if gateway else SCOPE_LINK,
    )


def route_diff(installed: Route | None, desired: Route | None) -> list[InstallRoute | RemoveRoute]:
    """Commands turning `installed` into `desired`, making the new route before breaking the old.

    The kernel keys a default route in table main by its metric: the same metric is
    replaced in one call, a new metric is added first and the old one removed after.
    """
    if installed == desired:
        return []
    if desired is None:
        assert installed is not None
        return [RemoveRoute(installed)]
    if installed is None or installed.metric == desired.metric:
        return [InstallRoute(desired)]
    return [InstallRoute(desired), RemoveRoute(installed)]
