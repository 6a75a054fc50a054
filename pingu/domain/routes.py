"""Route selection: the route an uplink should have, and the minimal diff to get there."""

from __future__ import annotations

import dataclasses

from pingu.domain.commands import (
    InstallOwnRoute,
    RemoveOwnRoute,
)
from pingu.domain.model import (
    MAIN_TABLE,
    NO_ATTRIBUTES,
    SCOPE_LINK,
    SCOPE_UNIVERSE,
    Family,
    Route,
    RouteAttributes,
)


def own_route(
    ifindex: int,
    ifname: str,
    gateway: str | None,
    metric: int,
    proto: int,
    *,
    attributes: RouteAttributes = NO_ATTRIBUTES,
    family: Family = Family.IPV4,
) -> Route:
    """pingu's default route for an uplink: via its gateway, or scope link without one,
    carrying the attributes of the route it was learned from (source, onlink, MTU...).

    IPv6 routes have no scope: the kernel files every one as universe, and reports it so.
    The route is asked for as it will be reported, or pingu would not know its own."""
    link_scope = gateway is None and family is Family.IPV4
    return Route(
        ifindex=ifindex,
        ifname=ifname,
        gateway=gateway,
        metric=metric,
        proto=proto,
        table=MAIN_TABLE,
        dst_len=0,
        scope=SCOPE_LINK if link_scope else SCOPE_UNIVERSE,
        attributes=attributes if gateway else _without_onlink(attributes),
        family=family,
    )


def _without_onlink(attributes: RouteAttributes) -> RouteAttributes:
    """`onlink` qualifies a gateway: a route without one has nothing to qualify (the rest,
    the IPv6 router preference included, stays)."""
    return dataclasses.replace(attributes, onlink=False)


def route_diff(
    installed: Route | None, desired: Route | None
) -> list[InstallOwnRoute | RemoveOwnRoute]:
    """Commands turning `installed` into `desired`: the new route first, the old one after.

    The table is never without pingu's route in between (make before break). The old
    route is removed by its exact key (gateway included), so the removal can never hit
    the new route or a route of somebody else's with the same metric.
    """
    if installed == desired:
        return []
    if desired is None:
        assert installed is not None
        return [RemoveOwnRoute(installed)]
    if installed is None:
        return [InstallOwnRoute(desired)]
    return [InstallOwnRoute(desired), RemoveOwnRoute(installed)]
