Feature: Rise and fall hysteresis
  A flapping uplink must not flap the routing table: with fall 3, wan1 loses its route
  only after three failed rounds in a row; with rise 2, it gets it back only after two
  passed rounds in a row.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric | fall | rise | period |
      | wan1   | 100    | 3    | 2    | 5 s    |
      | wan2   | 200    |      |      |        |
    And wan1 is up with a DHCP lease via 192.0.2.1
    And wan2 is up with a DHCP lease via 198.51.100.1

  Scenario: Fall 3: two failed rounds keep the route, the third removes it
    When the round on wan1 fails
    Then wan1 goes from up to failing
    And no route is installed, removed or deleted
    And the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    When 5 seconds pass
    And the round on wan1 fails
    Then the health of wan1 is failing
    And the table still holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    When 5 seconds pass
    And the round on wan1 fails
    Then wan1 goes from failing to down
    And pingu removes "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And the default routes in the table are:
      """
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """

  Scenario: A passed round in between starts the count again
    Given the round on wan1 fails
    And 5 seconds pass
    And the round on wan1 fails
    And 5 seconds pass
    When the round on wan1 passes
    Then wan1 goes from failing to up
    When 5 seconds pass
    And the round on wan1 fails
    Then the health of wan1 is failing
    And the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"

  Scenario: Rise 2: one passed round is not enough, the second brings the route back
    Given the round on wan1 fails
    And 5 seconds pass
    And the round on wan1 fails
    And 5 seconds pass
    And the round on wan1 fails
    And 5 seconds pass
    When the round on wan1 passes
    Then wan1 goes from down to rising
    And the table does not hold "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    When 5 seconds pass
    And the round on wan1 passes
    Then wan1 goes from rising to up
    And pingu installs "default via 192.0.2.1 dev wan1 proto pingu metric 100"

  Scenario: A failed round while rising starts the rise again
    Given the round on wan1 fails
    And 5 seconds pass
    And the round on wan1 fails
    And 5 seconds pass
    And the round on wan1 fails
    And 5 seconds pass
    And the round on wan1 passes
    And 5 seconds pass
    When the round on wan1 fails
    Then wan1 goes from rising to down
    When 5 seconds pass
    And the round on wan1 passes
    Then the health of wan1 is rising
    And the table does not hold "default via 192.0.2.1 dev wan1 proto pingu metric 100"

  Scenario: Carrier loss does not wait for the fall count
    Given the round on wan1 passes
    When wan1 loses its carrier
    Then wan1 goes from up to down
    And pingu removes "default via 192.0.2.1 dev wan1 proto pingu metric 100"
