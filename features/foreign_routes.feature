Feature: Routes that are not pingu's to touch
  pingu only ever deletes the IPv4 default routes of table main on the interfaces it was
  told about, and its own routes. Routes on other interfaces, to other prefixes or in
  other tables are left alone, whatever happens to the uplinks.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric |
      | wan1   | 100    |
    And wan1 is up with a DHCP lease via 192.0.2.1

  Scenario Outline: <what> is left alone
    When the route "<route>" appears
    Then no route is installed, removed or deleted
    And no round starts
    When the round on wan1 fails
    And 5 seconds pass
    And the round on wan1 passes
    Then no command touches "<route>"
    And the table still holds "<route>"

    Examples:
      | what                                 | route                                                      |
      | A default route of another interface | default via 203.0.113.1 dev eth9 proto dhcp metric 50      |
      | A default route in another table     | default via 192.0.2.1 dev wan1 table 100 proto dhcp metric 1024 |
      | A route to another prefix            | 198.51.100.0/24 via 192.0.2.1 dev wan1 proto static metric 0 |
      | pingu's proto in another table       | default via 192.0.2.1 dev wan1 table 100 proto pingu metric 100 |
      | A connected subnet of the uplink     | 192.0.2.0/24 dev wan1 proto kernel scope link metric 0     |

  Scenario: The uplink's own route stays pingu's while foreign ones come and go
    When the route "default via 203.0.113.1 dev eth9 proto dhcp metric 50" appears
    Then the default routes in the table are:
      """
      default via 192.0.2.1 dev wan1 proto pingu metric 100
      default via 203.0.113.1 dev eth9 proto dhcp metric 50
      """
