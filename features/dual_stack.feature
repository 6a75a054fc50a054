Feature: Dual stack: each family judged on its own
  An uplink with IPv4 and IPv6 probe targets is managed in both families: each has its own
  gateway, rounds, health and route. An ISP whose IPv6 is broken while its IPv4 works (a
  common fault) loses only its IPv6 route; losing the line takes both at once. A router
  advertisement that puts its route back in the table is a renewal, not a new gateway.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric | host                            |
      | wan1   | 100    | 203.0.113.10, 2001:db8:ffff::10 |
      | wan2   | 200    | 203.0.113.10, 2001:db8:ffff::10 |
    And wan1 is up with a DHCP lease via 192.0.2.1 and a router at fe80::1
    And wan2 is up with a DHCP lease via 198.51.100.1 and a router at fe80::2

  Scenario: IPv6 fails alone: its route goes, the IPv4 route stays
    When the IPv6 round on wan1 fails
    Then the verdict on wan1's IPv6 is fail
    And wan1's IPv6 goes from up to down
    And pingu removes "default via fe80::1 dev wan1 proto pingu metric 100"
    And the default routes in the table are:
      """
      default via 192.0.2.1 dev wan1 proto pingu metric 100
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      default via fe80::2 dev wan2 proto pingu metric 200
      """

  Scenario: IPv4 fails alone: the IPv6 route stays
    When the round on wan1 fails
    Then wan1 goes from up to down
    And no state of wan1's IPv6 changes
    And the table holds "default via fe80::1 dev wan1 proto pingu metric 100"

  Scenario: Carrier loss takes both families down at once
    When wan1 loses its carrier
    Then wan1 goes from up to down
    And wan1's IPv6 goes from up to down
    And the default routes in the table are:
      """
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      default via fe80::2 dev wan2 proto pingu metric 200
      """

  Scenario: A router advertisement putting its route back is a renewal
    When the next advertisement of fe80::1 puts "default via fe80::1 dev wan1 proto ra metric 1024" back
    Then wan1's IPv6 is captured again with gateway fe80::1
    And no route of pingu is installed or removed
    And pingu deletes "default via fe80::1 dev wan1 proto ra metric 1024"
    And no round starts

  Scenario: A router whose advertisements stop is forgotten when its lifetime ends
    When 1801 seconds pass without an advertisement from fe80::1
    Then wan1's IPv6 goes from up to down
    And pingu removes "default via fe80::1 dev wan1 proto pingu metric 100"
    And the table still holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"

  Scenario: A router advertising itself again keeps its gateway past the first lifetime
    When wan1's router fe80::1 advertises itself for 1800 seconds after 1000 seconds
    And 1000 seconds pass without an advertisement from fe80::1
    Then no state of wan1's IPv6 changes
    And the table still holds "default via fe80::1 dev wan1 proto pingu metric 100"

  Scenario: A router that withdraws itself (lifetime 0) takes the IPv6 route at once
    When wan1's router fe80::1 advertises itself for 0 seconds
    Then wan1's IPv6 goes from up to down
    And pingu removes "default via fe80::1 dev wan1 proto pingu metric 100"
    And the table still holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"

  Scenario: Another router withdrawing itself changes nothing
    When wan1's router fe80::99 advertises itself for 0 seconds
    Then no state of wan1's IPv6 changes
    And no route of pingu is installed or removed
