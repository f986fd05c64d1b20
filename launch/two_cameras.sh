#!/usr/bin/env bash
# Two cameras, one node, one engine call per pair of frames: topics front/* and rear/*,
# each with its own seq. The engine is compiled once (batch 2) into engines/cache.
#   bash launch/two_cameras.sh                      # camera0 + camera1
#   FRONT=front.mp4 REAR=rear.mp4 bash launch/two_cameras.sh --loop
# Extra arguments go to `rtseg run`. Then, in another shell:
#   rtseg echo tcp://127.0.0.1:5555 front/drivable rear/drivable --hz
set -euo pipefail
exec rtseg run --source "${FRONT:-camera0}" --name front --source "${REAR:-camera1}" \
    --name rear --engine auto --bind "${ENDPOINT:-tcp://127.0.0.1:5555}" "$@"
