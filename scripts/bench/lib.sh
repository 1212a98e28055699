# Shared by the benchmark scripts: source it after cd to the repository root.

# pick_port sets REPLY to a free loopback TCP port this script has not handed
# out before. Ports come from below the kernel's ephemeral range
# (net.ipv4.ip_local_port_range): a port from that range can be taken by any
# outgoing connection (raft, HTTP, the load generator) between this check and
# the daemon binding it, which then fails with "address already in use".
bench_ports_used=" "
pick_port() {
  local p lo=20768 hi=32768 first
  read -r first _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || first=
  if [[ $first =~ ^[0-9]+$ ]] && ((first > 13024)); then hi=$first lo=$((first - 12000)); fi
  while :; do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
    [[ $bench_ports_used == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      bench_ports_used+="$p "
      REPLY=$p
      return
    fi
  done
}

# new_cluster_token exports a fresh random cluster token in
# $REGENT_CLUSTER_TOKEN, which regent-controller server (and regent-pprof)
# read when no -cluster-token is given: a flag would show it in ps.
new_cluster_token() {
  REGENT_CLUSTER_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  export REGENT_CLUSTER_TOKEN
}
