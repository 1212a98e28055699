# regent-agent configuration for deploy/docker-compose.yml (see configs/agent.hcl for the reference).
controllers   = ["http://172.28.0.11:8080", "http://172.28.0.12:8080", "http://172.28.0.13:8080"]
# The agent needs a robot token bound to a region (the root token is refused by /v1/agent).
# Once the controllers are up, create a region and a robot token, and put the secret here:
#   T=$(docker compose -f deploy/docker-compose.yml exec -T controller1 cat /var/lib/regent/root.token)
#   curl -s -H "X-Auth-Token: $T" -X POST http://127.0.0.1:8081/membership/region/ -d '{"name":"demo"}'
#   curl -s -H "X-Auth-Token: $T" -X POST http://127.0.0.1:8081/membership/token/ \
#        -d '{"kind":"robot","region_id":<id>,"name":"agent1"}'     # prints "token" once
# The agent restarts until the token is there (exec into it fails while it restarts), so write it
# from a one-off container on the same volume, then restart the agent:
#   docker compose -f deploy/docker-compose.yml run --rm --no-deps --entrypoint sh agent1 \
#        -c 'umask 077; echo <token> > /var/lib/regent-agent/robot.token'
#   docker compose -f deploy/docker-compose.yml restart agent1
token_file    = "/var/lib/regent-agent/robot.token"
roles         = ["network"]
data_dir      = "/var/lib/regent-agent"
segment_mode  = "vxlan"
public_bridge = "br-public"
vtep_addr     = "172.28.0.21"
metrics_addr  = "0.0.0.0:8090"
