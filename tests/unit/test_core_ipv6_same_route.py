"""IPv6 keeps one route per destination, metric and next hop: pingu's route whose
attributes change (the kernel's first router-advertisement route carries the router's hop
limit, its later ones do not) is replaced in place, and the old one is not removed after,
which would remove the new one."""

from __future__ import annotations

from pingu.domain.commands import InstallOwnRoute, RemoveOwnRoute
from pingu.domain.events import RouteAppeared
from pingu.domain.model import Family, Route, RouteAttributes
from pingu.domain.routes import own_route
from tests.unit.fakes import IFINDEX, PROTO, TARGET6, Driver, config, uplink

HOP_LIMIT = RouteAttributes(metrics=(("hoplimit", 64),), pref=0)
PLAIN = RouteAttributes(pref=0)


def ra_route(attributes: RouteAttributes) -> Route:
    return Route(2, "wan1", "fe80::1", 1024, 9, family=Family.IPV6, attributes=attributes,
                 expires=30)  # fmt: skip


def own6(attributes: RouteAttributes) -> Route:
    return own_route(IFINDEX["wan1"], "wan1", "fe80::1", 100, PROTO, attributes=attributes,
                     family=Family.IPV6)  # fmt: skip


def test_new_attributes_of_pingus_ipv6_route_replace_it_and_nothing_is_removed() -> None:
    driver = Driver(config(uplink("wan1", 100, targets=(TARGET6,))))
    driver.link("wan1")
    driver.send(RouteAppeared(ra_route(HOP_LIMIT)))
    assert driver.kernel.own("wan1") == [own6(HOP_LIMIT)]
    done = driver.send(RouteAppeared(ra_route(PLAIN)))  # the next advertisement's route
    changes = [c for c in done if isinstance(c, InstallOwnRoute | RemoveOwnRoute)]
    assert changes == [InstallOwnRoute(own6(PLAIN))]
