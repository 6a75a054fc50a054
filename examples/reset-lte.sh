#!/bin/sh
# Reset an LTE uplink that pingu found faulty (an example: adapt it to your modem).
#
# pingu runs it as root, without a shell and without arguments, after the uplink's route
# was removed, at most once per reset_script_grace_period, and kills it after
# script_timeout (60 s by default): keep it short. Its output goes to pingu's log.
# What pingu tells it, in the environment:
#   PINGU_INTERFACE  the uplink (wwan0, ppp0, ...)
#   PINGU_GATEWAY    its gateway, empty for a point-to-point link or when none was learned
#   PINGU_REASON     why it is faulty, in words
#   PINGU_LOSS       echoes lost/sent in the last round (absent before any round)
#   PINGU_DELAY_MS   average delay of the replies of the last round (empty: no reply)
# By hand: `sudo /etc/pingu/reset-lte.sh wwan0` (an argument wins over PINGU_INTERFACE).
set -u

# A pppd link that runs as a systemd service (restarting the service keeps pppd out of
# pingu's own service), e.g. a unit wrapping `pppd call provider`. Edit to taste.
PPP_UNIT="ppp@provider.service"
SETTLE_S=3

iface=${1:-${PINGU_INTERFACE:-}}
if [ -z "$iface" ]; then
    echo "usage: $0 INTERFACE (or PINGU_INTERFACE in the environment)" >&2
    exit 2
fi
echo "reset-lte: $iface is faulty (${PINGU_REASON:-no reason given});" \
    "lost ${PINGU_LOSS:-?}, delay ${PINGU_DELAY_MS:-?} ms, gateway ${PINGU_GATEWAY:-none}"

# 1. A modem managed by ModemManager: reset it; it registers again and whoever connects
#    it (NetworkManager, a dispatcher) brings the bearer and the route back.
if command -v mmcli >/dev/null 2>&1 && mmcli --list-modems 2>/dev/null | grep -q /Modem/; then
    echo "reset-lte: resetting the modem through ModemManager"
    exec mmcli --modem=any --reset
fi

# 2. A pppd link: redial.
case $iface in
ppp*)
    if command -v systemctl >/dev/null 2>&1 && systemctl cat "$PPP_UNIT" >/dev/null 2>&1; then
        echo "reset-lte: restarting $PPP_UNIT"
        exec systemctl restart "$PPP_UNIT"
    fi
    ;;
esac

# 3. Anything else: bounce the link, so that its DHCP client or driver starts over.
if ! ip link show dev "$iface" >/dev/null 2>&1; then
    echo "reset-lte: $iface does not exist; nothing to reset" >&2
    exit 1
fi
echo "reset-lte: bouncing $iface"
ip link set dev "$iface" down
sleep "$SETTLE_S"
exec ip link set dev "$iface" up
