Feature: One failover followed by its event id, and the history status shows
  Every state change of an uplink is numbered, all uplinks together, from 1. The number is
  in the change's log line, in the environment of the scripts run for it (PINGU_EVENT_ID)
  and in the history `pingu status` shows, which keeps each uplink's last 60 rounds and
  last 20 state changes.

  Background:
    Given pingu runs with the uplinks:
      | uplink | metric | down_script          | up_script          | reset_script          |
      | wan1   | 100    | /usr/local/sbin/down | /usr/local/sbin/up | /usr/local/sbin/reset |
      | wan2   | 200    | /usr/local/sbin/down |                    |                       |
    And wan1 is up with a DHCP lease via 192.0.2.1
    And wan2 is up with a DHCP lease via 198.51.100.1

  Scenario: A failover and the scripts run for it share one event id
    When the round on wan1 fails
    Then wan1 goes from up to down as event 1
    And the down and reset scripts of wan1 run for event 1
    And the history of wan1 tells event 1: up -> down, "route metric 100 removed, down_script run, reset_script run"

  Scenario: Event ids grow across uplinks
    Given the round on wan1 fails
    When the round on wan2 fails
    Then wan2 goes from up to down as event 2
    And the down script of wan2 runs for event 2
    When 5 seconds pass
    And the round on wan1 passes
    Then wan1 goes from down to up as event 3
    And the up script of wan1 runs for event 3
    And the history of wan1 tells event 3: down -> up, "route metric 100 installed, up_script run"

  Scenario: The history is bounded: the last 60 rounds and the last 20 state changes
    When 70 rounds on wan2 fail and pass by turns
    Then the history of wan2 holds its last 60 rounds
    And the history of wan2 holds the state changes 51 to 70
