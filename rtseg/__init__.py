"""rtseg: real-time road segmentation, from checkpoint to masks on a ZeroMQ socket.

The package root imports nothing heavy: torch, OpenCV and ONNX Runtime are imported
inside the code that needs them, so `rtseg --help` and `rtseg echo` start fast.
"""

__version__ = "0.1.0"
