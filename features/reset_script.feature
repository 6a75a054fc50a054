Feature: The reset script and its grace period
  When an uplink is found faulty pingu runs its reset_script (to redial a modem, bounce
  an interface...), at most once per reset_script_grace_period. The route goes first:
  traffic must not wait on a script that may take a while.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric | reset_script              | reset_script_grace_period |
      | wan1   | 100    | /usr/local/sbin/reset-wan | 600 s                     |
      | wan2   | 200    |                           |                           |
    And wan1 is up with a DHCP lease via 192.0.2.1
    And wan2 is up with a DHCP lease via 198.51.100.1

  Scenario: A failed round removes the route before the reset script starts
    When the round on wan1 fails
    Then the reset script /usr/local/sbin/reset-wan of wan1 runs
    And the reset script of wan1 runs with reason "203.0.113.10: 5/5 lost, no reply"
    And pingu removes the route of wan1 before the reset script starts

  Scenario: A passing round runs no script
    When the round on wan1 passes
    Then no script runs

  Scenario: Within the grace period a second failure runs nothing; after it, the script runs again
    Given the round on wan1 fails
    And the reset script of wan1 ends
    When 5 seconds pass
    And the round on wan1 fails
    Then no script runs
    When 595 seconds pass
    Then a round starts on wan1 through 192.0.2.1
    When the round on wan1 fails
    Then the reset script /usr/local/sbin/reset-wan of wan1 runs

  Scenario: A script still running is not started a second time
    Given the round on wan1 fails
    When 600 seconds pass
    And the round on wan1 fails
    Then no script runs

  Scenario: An uplink without a reset script only loses its route
    When the round on wan2 fails
    Then pingu removes "default via 198.51.100.1 dev wan2 proto pingu metric 200"
    And no script runs
