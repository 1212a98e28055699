#!/usr/bin/env bash
# Three regent-controller nodes on loopback for development.
#   scripts/dev-cluster.sh up|down|status|reset
# node N: http 127.0.0.1:808N, raft 127.0.0.1:830N, dns 127.0.0.1:805(3+N)
# Data, logs and pid files under ./data/dev-cluster/. Node 1 bootstraps; 2 and 3 join it.
# Extra server flags for every node: DEV_CLUSTER_ARGS="-log-level trace" scripts/dev-cluster.sh up
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=./bin/regent-controller
DIR=./data/dev-cluster
NODES=(1 2 3)
TOKEN_FILE=$DIR/cluster.token
ROOT_TOKEN_FILE=$DIR/node1/root.token

http_addr() { echo "127.0.0.1:808$1"; }
alive() { grep -qs regent-controller "/proc/$1/cmdline"; } # false for zombies and reused pids
gone() { ! alive "$1"; }
pid_of() { # prints the pid of node $1 if it is running
  local f=$DIR/node$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ -n $pid ]] && alive "$pid" && echo "$pid"
}
wait_until() { # wait_until SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; }
healthy() { curl -fsS "http://$(http_addr "$1")/healthz"; } # 200 once the node is in the cluster and knows a leader
members() { curl -fsS -H "Authorization: Bearer $(<"$ROOT_TOKEN_FILE")" "http://$(http_addr 1)/v1/operator/members"; }

start_node() {
  local n=$1 pid
  if pid=$(pid_of "$n"); then echo "node$n already running (pid $pid)"; return; fi
  local args=(server -node-id "node$n" -data-dir "$DIR/node$n"
    -http-addr "$(http_addr "$n")" -raft-addr "127.0.0.1:830$n" -dns-addr "127.0.0.1:805$((3 + n))")
  if ((n == 1)); then args+=(-bootstrap); else args+=(-join "$(http_addr 1)"); fi
  # The cluster token goes in the environment, not on the command line (ps shows that).
  # shellcheck disable=SC2086 # DEV_CLUSTER_ARGS is a word list on purpose
  REGENT_CLUSTER_TOKEN="$(<"$TOKEN_FILE")" nohup "$BIN" "${args[@]}" ${DEV_CLUSTER_ARGS:-} >>"$DIR/node$n.log" 2>&1 </dev/null &
  echo $! >"$DIR/node$n.pid"
  echo "node$n started (pid $!, http $(http_addr "$n"), log $DIR/node$n.log)"
}

up() {
  make build # incremental: the cluster runs the checkout's code, not an old build
  mkdir -p "$DIR"
  if [[ ! -s $TOKEN_FILE ]]; then
    (umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE")
  fi
  # A new cluster: node1 bootstraps and must lead before 2 and 3 join it. A cluster
  # that exists already (up after down) has no leader until a majority runs: start
  # every node at once and wait for each to know the leader.
  local existing=0
  [[ -s $ROOT_TOKEN_FILE ]] && existing=1
  start_node 1
  wait_until 30 port_open "$(http_addr 1)" || { echo "node1 did not listen; see $DIR/node1.log" >&2; exit 1; }
  if ((!existing)); then
    if wait_until 30 test -s "$ROOT_TOKEN_FILE"; then
      wait_until 30 members || echo "warning: node1 has no leader yet; see $DIR/node1.log" >&2
    else
      echo "warning: $ROOT_TOKEN_FILE not written; see $DIR/node1.log" >&2
    fi
  fi
  start_node 2
  start_node 3
  for n in "${NODES[@]}"; do
    wait_until 30 healthy "$n" || echo "warning: node$n is not in a cluster with a leader; see $DIR/node$n.log" >&2
  done
  status
}

down() {
  local n pid
  for n in "${NODES[@]}"; do
    if pid=$(pid_of "$n"); then
      kill -TERM "$pid"
      wait_until 15 gone "$pid" || { echo "node$n: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
      echo "node$n stopped"
    fi
    rm -f "$DIR/node$n.pid"
  done
}

status() {
  local n pid
  for n in "${NODES[@]}"; do
    if pid=$(pid_of "$n"); then echo "node$n running (pid $pid, http $(http_addr "$n"))"; else echo "node$n stopped"; fi
  done
  if [[ -s $ROOT_TOKEN_FILE ]] && pid_of 1 >/dev/null; then
    echo "members (via node1):"
    "$BIN" members -addr "http://$(http_addr 1)" -token-file "$ROOT_TOKEN_FILE" || true
    echo "root token: $ROOT_TOKEN_FILE"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  reset) down; rm -rf "$DIR"; echo "removed $DIR" ;;
  *) echo "usage: $0 up|down|status|reset" >&2; exit 2 ;;
esac
