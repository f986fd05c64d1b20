"""`rtseg launch FILE.toml`: several nodes and consumers started, restarted and stopped
together, supervised like ``ros2 launch`` (respawn, respawn_delay, max_retries).

Standard library plus `rtseg.client` (for ``ready`` waits) only: no torch.
"""

from rtseg.launch.spec import LaunchSpec, ProcessSpec, load_launch_file, show_launch_args
from rtseg.launch.supervisor import run_launch

__all__ = ["LaunchSpec", "ProcessSpec", "load_launch_file", "run_launch", "show_launch_args"]
