Feature: A new gateway from a renewed lease
  When the DHCP client of an uplink gets a lease with another gateway, pingu moves its
  route to the new gateway (the new route first, then the old one out) and checks the
  new gateway with a round at once instead of waiting for the next period.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric |
      | wan1   | 100    |
      | wan2   | 200    |
    And wan1 is up with a DHCP lease via 192.0.2.1
    And wan2 is up with a DHCP lease via 198.51.100.1
    And the round on wan1 passes

  Scenario: The route moves to the new gateway and a round starts at once
    When the DHCP client of wan1 installs "default via 192.0.2.254 dev wan1 proto dhcp metric 1024"
    Then wan1 is captured with gateway 192.0.2.254
    And pingu installs "default via 192.0.2.254 dev wan1 proto pingu metric 100" before it removes "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And the DHCP route of wan1 is gone
    And a round starts on wan1 through 192.0.2.254
    And the default routes in the table are:
      """
      default via 192.0.2.254 dev wan1 proto pingu metric 100
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """

  Scenario: A new gateway that does not answer loses the route
    Given the DHCP client of wan1 installs "default via 192.0.2.254 dev wan1 proto dhcp metric 1024"
    When the round on wan1 fails
    Then pingu removes "default via 192.0.2.254 dev wan1 proto pingu metric 100"
    And the table does not hold "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And the default routes in the table are:
      """
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """

  Scenario: The rounds after a failover go through the newly learned gateway
    Given 5 seconds pass
    And the round on wan1 fails
    When the DHCP client of wan1 installs "default via 192.0.2.254 dev wan1 proto dhcp metric 1024"
    Then a round starts on wan1 through 192.0.2.254
    And the default routes in the table are:
      """
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """
    When the round on wan1 passes
    Then the table holds "default via 192.0.2.254 dev wan1 proto pingu metric 100"
