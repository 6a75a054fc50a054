Feature: Capture of the default routes the DHCP clients install
  pingu takes over the default route a DHCP (or PPP) client installs on a configured
  uplink: it learns the gateway, puts its own route with the configured metric in place
  first, and only then deletes the client's route, so the host is never without a
  default route (make before break). initial_state is up unless said otherwise, so an
  uplink is trusted until its first round says otherwise.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric |
      | wan1   | 100    |
      | wan2   | 200    |
    And the link wan1 is up
    And the link wan2 is up

  Scenario: A DHCP default route is captured and replaced by pingu's own
    When the DHCP client of wan1 installs "default via 192.0.2.1 dev wan1 proto dhcp metric 1024"
    Then wan1 is captured with gateway 192.0.2.1
    And pingu installs "default via 192.0.2.1 dev wan1 proto pingu metric 100" before it deletes "default via 192.0.2.1 dev wan1 proto dhcp metric 1024"
    And the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And the DHCP route is gone
    And a round starts on wan1 through 192.0.2.1

  Scenario: Every uplink gets the metric configured for it
    When the DHCP client of wan1 installs "default via 192.0.2.1 dev wan1 proto dhcp metric 1024"
    And the DHCP client of wan2 installs "default via 198.51.100.1 dev wan2 proto dhcp metric 50"
    Then the default routes in the table are:
      """
      default via 192.0.2.1 dev wan1 proto pingu metric 100
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """

  Scenario: A renewed lease with the same gateway only loses its DHCP route
    Given wan1 is up with a DHCP lease via 192.0.2.1
    And the round on wan1 passes
    When the DHCP client of wan1 installs "default via 192.0.2.1 dev wan1 proto dhcp metric 1024"
    Then wan1 is captured with gateway 192.0.2.1
    And no round starts
    And the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And the DHCP route of wan1 is gone

  Scenario: pingu's own route, left by an earlier run, is adopted and not installed twice
    When the route "default via 192.0.2.1 dev wan1 proto pingu metric 100" appears
    Then no route is installed, removed or deleted
    And the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And a round starts on wan1 through 192.0.2.1
