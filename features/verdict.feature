Feature: The verdict of a round: loss and average delay
  A round of `count` echoes passes when at least one reply came back, no more than
  `max_lost` echoes were lost, and the average delay of the replies is below
  `max_delay`. wan1 sends 5 echoes per round, tolerates 2 lost and 1000 ms on average.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric | count | max_lost | max_delay |
      | wan1   | 100    | 5     | 2        | 1000 ms   |
    And wan1 is up with a DHCP lease via 192.0.2.1

  Scenario: An average delay over max_delay fails the round
    When the round on wan1 gets 5 of 5 echoes back, 1500 ms on average
    Then the verdict on wan1 is fail: "average 1500.0 ms (max_delay 1000 ms)"
    And pingu removes "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And the table holds no default route

  Scenario Outline: Average delay <delay> ms against max_delay 1000 ms
    When the round on wan1 gets 5 of 5 echoes back, <delay> ms on average
    Then the verdict on wan1 is <verdict>
    And the health of wan1 is <health>

    Examples:
      | delay | verdict | health |
      | 20    | pass    | up     |
      | 999.9 | pass    | up     |
      | 1000  | fail    | down   |
      | 2500  | fail    | down   |

  Scenario Outline: <received> of 5 echoes back against max_lost 2
    When the round on wan1 gets <received> of 5 echoes back, 30 ms on average
    Then the verdict on wan1 is <verdict>: "<detail>"
    And the health of wan1 is <health>

    Examples:
      | received | verdict | detail                        | health |
      | 5        | pass    | 0/5 lost, average 30.0 ms     | up     |
      | 3        | pass    | 2/5 lost, average 30.0 ms     | up     |
      | 2        | fail    | 3/5 lost (max_lost 2)         | down   |
      | 0        | fail    | 5/5 lost, no reply            | down   |

  Scenario: Loss above max_lost removes the route, loss within it brings it back
    When the round on wan1 gets 1 of 5 echoes back, 30 ms on average
    Then the table holds no default route
    When 5 seconds pass
    And the round on wan1 gets 3 of 5 echoes back, 30 ms on average
    Then the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"
