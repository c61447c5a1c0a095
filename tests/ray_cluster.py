"""A Ray cluster on this machine's loopback for tests: a head with no CPUs (so every trial runs on a worker
node) and N worker nodes of one CPU each, all bound to 127.0.0.1.

Prints one JSON line, {"address": ..., "workers": [node ids]}, then obeys lines on stdin: `remove NODE_ID`
kills that worker node at once (its raylet and workers, as a lost machine) and answers `removed`. The
cluster shuts down when stdin closes. Token authentication is on when RAY_AUTH_MODE=token is set.
"""

import json
import sys

from ray.cluster_utils import Cluster

LOOPBACK = "127.0.0.1"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    cluster = Cluster(initialize_head=True, head_node_args={"node_ip_address": LOOPBACK, "num_cpus": 0,
                                                            "include_dashboard": False})
    workers = {}
    for _ in range(count):
        node = cluster.add_node(node_ip_address=LOOPBACK, num_cpus=1)
        workers[node.node_id] = node
    print(json.dumps({"address": cluster.address, "workers": list(workers)}), flush=True)
    for line in sys.stdin:
        command, _, node_id = line.strip().partition(" ")
        if command == "remove":
            cluster.remove_node(workers.pop(node_id), allow_graceful=False)
            print("removed", flush=True)
    cluster.shutdown()


if __name__ == "__main__":
    main()
