Feature: An uplink not trusted before its first round (initial_state down)
  With initial_state down, the seed's behaviour, a captured uplink's gateway is learned
  and its DHCP route deleted, but pingu's route waits for a round that passes.

  Background:
    Given pingu runs with initial_state down and the uplinks:
      | uplink | metric |
      | wan1   | 100    |
    And the link wan1 is up

  Scenario: The route comes only after the first round passes
    When the DHCP client of wan1 installs "default via 192.0.2.1 dev wan1 proto dhcp metric 1024"
    Then wan1 is captured with gateway 192.0.2.1
    And the table holds no default route
    And a round starts on wan1 through 192.0.2.1
    When the round on wan1 passes
    Then wan1 goes from down to up
    And the table holds "default via 192.0.2.1 dev wan1 proto pingu metric 100"

  Scenario: An uplink whose first round fails never gets a route
    Given the DHCP client of wan1 installs "default via 192.0.2.1 dev wan1 proto dhcp metric 1024"
    When the round on wan1 fails
    Then the verdict on wan1 is fail
    And no route is installed, removed or deleted
    And the table holds no default route
