Feature: Uplinks without a gateway
  A point-to-point uplink (PPP, an LTE modem in raw-IP mode) has a default route with no
  gateway: `default dev ppp0 scope link`. pingu captures it like any other and installs
  a gateway-less route of its own. An Ethernet uplink that exists but never learns a
  gateway is faulty: after a period its reset script runs.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric | period | reset_script               |
      | wan1   | 100    | 5 s    | /usr/local/sbin/reset-wan1 |
      | ppp0   | 300    | 5 s    | /usr/local/sbin/redial     |

  Scenario: A point-to-point default route is captured without a gateway
    Given the point-to-point link ppp0 is up
    When the route "default dev ppp0 proto boot scope link metric 0" appears
    Then ppp0 is captured without a gateway
    And pingu installs "default dev ppp0 proto pingu scope link metric 300" before it deletes "default dev ppp0 proto boot scope link metric 0"
    And the default routes in the table are:
      """
      default dev ppp0 proto pingu scope link metric 300
      """
    And a round starts on ppp0 without a gateway

  Scenario: A failed round on the point-to-point uplink removes its gateway-less route
    Given the point-to-point link ppp0 is up
    And the route "default dev ppp0 proto boot scope link metric 0" appears
    When the round on ppp0 fails
    Then pingu removes "default dev ppp0 proto pingu scope link metric 300"
    And the table holds no default route
    And the reset script /usr/local/sbin/redial of ppp0 runs

  Scenario: An interface with no gateway learned for a period runs its reset script
    Given the link wan1 is up
    When 4 seconds pass
    Then no script runs
    When 1 second passes
    Then the reset script of wan1 runs with reason "no gateway learned"
    And no round starts
    And the table holds no default route

  Scenario: No gateway learned is subject to the grace period too
    Given the link wan1 is up
    And 5 seconds pass
    And the reset script of wan1 ends
    When 5 seconds pass
    Then no script runs

  Scenario: A configured interface that does not exist runs no script
    When 60 seconds pass
    Then no script runs
    And no round starts
