Feature: Dual stack: the reset script resets the line, not a family
  The reset script acts on the uplink (it redials a modem, bounces an interface), so it
  cuts every family at once. pingu runs it only when no family of the uplink still carries
  traffic: an ISP whose IPv6 is broken, or who gives no IPv6 at all, keeps its working
  IPv4.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric | host                            | reset_script              |
      | wan1   | 100    | 203.0.113.10, 2001:db8:ffff::10 | /usr/local/sbin/reset-wan |
    And wan1 is up with a DHCP lease via 192.0.2.1 and a router at fe80::1

  Scenario: IPv6 failing while IPv4 works runs no reset script
    When the IPv6 round on wan1 fails
    Then wan1's IPv6 goes from up to down
    And no script runs

  Scenario: Both families down: the reset script runs once
    Given the IPv6 round on wan1 fails
    When the round on wan1 fails
    Then wan1 goes from up to down
    And the reset script /usr/local/sbin/reset-wan of wan1 runs

  Scenario: An ISP without IPv6 (no router ever advertised) is not reset for it
    Given pingu runs with the uplinks:
      | uplink | metric | host                            | reset_script              |
      | wan2   | 200    | 203.0.113.10, 2001:db8:ffff::10 | /usr/local/sbin/reset-wan |
    And wan2 is up with a DHCP lease via 198.51.100.1
    When 6 seconds pass
    Then no script runs
