#!/usr/bin/env bash
# Sets up a fresh machine, deploys chains/edge.yaml and shows it working:
# the LAN host's DHCP lease, LAN→WAN traffic through firewall, router and
# NAT, the NATed source address the WAN host sees, the port forward, and the
# metrics. The chain is left running; `nfvhost destroy chains/edge.yaml`
# removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
nfvhost=target/release/nfvhost
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

"$nfvhost" destroy --chain edge >/dev/null 2>&1 || true
step "deploy chains/edge.yaml"
"$nfvhost" deploy chains/edge.yaml

step "the LAN host's address, from the DHCP VNF"
"$nfvhost" exec lan -- ip -4 -br addr show eth0
"$nfvhost" exec lan -- ip -4 route

step "LAN → WAN: ping through firewall, router and NAT"
"$nfvhost" exec lan -- ping -c 3 -i 0.2 203.0.113.10

step "what the WAN host sees (tcpdump on wan:eth0)"
"$nfvhost" exec wan -- timeout 5 tcpdump -i eth0 -n -c 2 -l icmp 2>/dev/null &
capture=$!
sleep 1
"$nfvhost" exec lan -- ping -c 2 -i 0.2 -q 203.0.113.10 >/dev/null
wait "$capture" || true

step "the hops (tracepath)"
"$nfvhost" exec lan -- tracepath -n -m 5 203.0.113.10 || true

step "WAN → 203.0.113.1:8080, forwarded to the LAN host's port 80"
"$nfvhost" exec lan -- python3 -m http.server 80 --bind 192.168.1.50 >/dev/null 2>&1 &
server=$!
sleep 1
"$nfvhost" exec wan -- curl -s -m 5 -o /dev/null -w 'HTTP %{http_code} from %{remote_ip}:%{remote_port}\n' http://203.0.113.1:8080/ || true
kill "$server" 2>/dev/null || true

step "unsolicited WAN traffic gets nowhere (no port forward for 9999)"
"$nfvhost" exec wan -- curl -s -m 2 http://203.0.113.1:9999/ && echo "unexpected answer" || echo "no answer, as intended"

step "per-VNF counters (nfvhost stats --no-stream)"
"$nfvhost" stats --no-stream

step "a few metrics from http://127.0.0.1:9464/metrics"
curl -s http://127.0.0.1:9464/metrics | grep -E '^nfvhost_vnf_packets_total' || true

printf '\nThe chain is still running. Try: %s inspect | %s stats | %s exec lan -- bash\nRemove it with: %s destroy chains/edge.yaml\n' \
    "$nfvhost" "$nfvhost" "$nfvhost" "$nfvhost"
