#!/usr/bin/env bash
# Start a node on the bundled demo (generated road scenes, bundled checkpoint) and print
# every mask it publishes, as a navigation consumer would see them. Ctrl-C stops both.
# Extra arguments go to `rtseg run`, e.g.  bash launch/demo.sh --encoding bits --fps 10
set -euo pipefail
ENDPOINT=${ENDPOINT:-tcp://127.0.0.1:5555}

rtseg run --source demo --bind "$ENDPOINT" "$@" &
node=$!
trap 'kill -TERM "$node" 2>/dev/null || true; wait "$node" || true' EXIT INT TERM

# echo gives up after 60 s of silence, e.g. when the node could not start.
rtseg echo "$ENDPOINT" demo/drivable demo/classes --timeout 60
