Feature: Several targets with a quorum
  One target's outage must not take every route away: wan1 pings three targets in each
  round and stays up as long as at least min_hosts_up 2 of them pass.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric | host                                   | min_hosts_up |
      | wan1   | 100    | 203.0.113.10, 203.0.113.11, 203.0.113.12 | 2            |
      | wan2   | 200    | 203.0.113.10                           | 1            |
    And wan2 is up with a DHCP lease via 198.51.100.1
    And wan1 is up with a DHCP lease via 192.0.2.1

  Scenario: Each round sends echoes to every target
    Given the round on wan1 passes
    When 5 seconds pass
    Then a round starts on wan1 through 192.0.2.1
    And the echoes of that round go to 203.0.113.10, 203.0.113.11 and 203.0.113.12

  Scenario: One target down of three keeps the route
    When the round on wan1 gets no echo back from 203.0.113.12
    Then the verdict on wan1 is pass: "2/3 targets up (min_hosts_up 2)"
    And no route is installed, removed or deleted
    And the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"

  Scenario: Two targets down of three remove the route
    When the round on wan1 gets no echo back from 203.0.113.11 and 203.0.113.12
    Then the verdict on wan1 is fail: "1/3 targets up (min_hosts_up 2)"
    And pingu removes "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And the default routes in the table are:
      """
      default via 198.51.100.1 dev wan2 proto pingu metric 200
      """

  Scenario: The quorum is back: two of three targets answer again
    Given the round on wan1 gets no echo back from 203.0.113.10 and 203.0.113.11
    When 5 seconds pass
    And the round on wan1 gets no echo back from 203.0.113.10
    Then wan1 goes from down to up
    And the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"
