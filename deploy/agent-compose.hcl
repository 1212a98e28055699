# regent-agent configuration for deploy/docker-compose.yml (see configs/agent.hcl for the reference).
controllers   = ["http://172.28.0.11:8080", "http://172.28.0.12:8080", "http://172.28.0.13:8080"]
token_file    = "/var/lib/regent-controller1/root.token" # demo only: root token of controller1
roles         = ["network"]
data_dir      = "/var/lib/regent-agent"
segment_mode  = "vxlan"
public_bridge = "br-public"
vtep_addr     = "172.28.0.21"
metrics_addr  = "0.0.0.0:8090"
