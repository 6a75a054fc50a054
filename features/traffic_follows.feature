Feature: Traffic follows the route: what a switch broke is ended at once
  A flow source-NATed to an uplink's address, or sent by the box from it, keeps that
  address when its route moves to another uplink, where no reply comes back. When traffic
  leaves an uplink (its route goes, or a better uplink's route comes back), pingu ends
  those flows on the uplink left, right after the route change: their conntrack entries
  are deleted and the box's own connections destroyed, so they start again on the new
  way out. Flows of an uplink traffic does not leave are never touched.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric |
      | wan1   | 100    |
      | wan2   | 200    |
    And wan1 is up with a DHCP lease via 192.0.2.1
    And wan2 is up with a DHCP lease via 198.51.100.1

  Scenario: Failover ends the flows of the uplink left, once its route is gone
    When the round on wan1 fails
    Then pingu ends the flows of wan1, now via wan2
    And pingu removes "default via 192.0.2.1 dev wan1 proto pingu metric 100" before it ends them
    And the flows of wan2 are not ended

  Scenario: Failback ends the flows that started on the backup, once the better route is in
    Given the round on wan1 fails
    And 5 seconds pass
    When the round on wan1 passes
    Then pingu ends the flows of wan2, now via wan1
    And pingu installs "default via 192.0.2.1 dev wan1 proto pingu metric 100" before it ends them

  Scenario: A failure of an uplink that carries no traffic ends nothing
    When the round on wan2 fails
    Then pingu ends no flows

  Scenario: Carrier loss ends the flows of the uplink left
    When wan1 loses its carrier
    Then pingu ends the flows of wan1, now via wan2

  Scenario: Every uplink down: the flows of the last one are ended, with no route left
    Given the round on wan1 fails
    When the round on wan2 fails
    Then pingu ends the flows of wan2, with no route left

  Scenario: A route someone deleted is put back without ending anything
    When someone deletes "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    Then pingu installs "default via 192.0.2.1 dev wan1 proto pingu metric 100"
    And pingu ends no flows

  Scenario: A flap shorter than the quiet period ends nothing on the uplink that came back
    Given every uplink has a flow_quiet_period of 10 s
    When the round on wan1 fails
    Then pingu ends no flows
    When 5 seconds pass
    And the round on wan1 passes
    And 10 seconds pass
    Then pingu ends the flows of wan2, now via wan1, after 10 s
    And the flows of wan1 are not ended

  Scenario: After the quiet period, the flows of the uplink left are ended
    Given every uplink has a flow_quiet_period of 10 s
    When the round on wan1 fails
    And 10 seconds pass
    Then pingu ends the flows of wan1, now via wan2, after 10 s

  Scenario: Turned off, nothing is ended
    Given wan1 has flush_conntrack and kill_sockets off
    When the round on wan1 fails
    Then pingu ends no flows

  Scenario: Only conntrack, when sockets are left alone
    Given wan1 has kill_sockets off
    When the round on wan1 fails
    Then pingu ends the flows of wan1, now via wan2
    And only their conntrack entries are deleted
