Feature: Failover and failback between two uplinks
  The preferred uplink wan1 (metric 100) carries the traffic while its rounds pass.
  When a round fails its route goes, and traffic falls back on wan2 (metric 200); when
  wan1 passes again its route comes back.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric |
      | wan1   | 100    |
      | wan2   | 200    |
    And wan1 is up with a DHCP lease via 192.0.2.1
    And wan2 is up with a DHCP lease via 198.51.100.1

  Scenario: Failover: the primary's round fails, the secondary's route stays
    When the round on wan1 fails
    Then the verdict on wan1 is fail: "203.0.113.10: 5/5 lost, no reply"
    And wan1 goes from up to down
    And pingu removes "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And the default routes in the table are:
      """
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """

  Scenario: Failback: the primary passes again and its route comes back
    Given the round on wan1 fails
    When 5 seconds pass
    Then a round starts on wan1 through 192.0.2.1
    When the round on wan1 passes
    Then wan1 goes from down to up
    And pingu installs "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And the default routes in the table are:
      """
      default via 192.0.2.1 dev wan1 proto pingu metric 100
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """

  Scenario: Rounds come every period, counted from the start of the previous one
    Given the round on wan1 passes
    When 4 seconds pass
    Then no round starts
    When 1 second passes
    Then a round starts on wan1 through 192.0.2.1

  Scenario: Carrier loss removes the route at once, without waiting for a round
    Given the round on wan1 passes
    When wan1 loses its carrier
    Then wan1 goes from up to down
    And pingu removes "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And no round starts
    And the default routes in the table are:
      """
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """

  Scenario: Carrier back starts a round at once; the route returns when it passes
    Given the round on wan1 passes
    And wan1 loses its carrier
    When wan1 gets its carrier back
    Then a round starts on wan1 through 192.0.2.1
    And the table does not hold "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    When the round on wan1 passes
    Then the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"

  Scenario: A round due while the carrier is down fails without sending an echo
    Given the round on wan1 passes
    And wan1 loses its carrier
    When 5 seconds pass
    Then the verdict on wan1 is fail: "carrier down, nothing sent"
    And no round starts
    And the default routes in the table are:
      """
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """

  Scenario: Both uplinks fail: no default route is left (the seed's behaviour)
    When the round on wan1 fails
    And the round on wan2 fails
    Then the table holds no default route
