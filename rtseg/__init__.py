"""rtseg: real-time road segmentation, from checkpoint to masks on a ZeroMQ socket.

The package root imports nothing heavy: torch, OpenCV and ONNX Runtime are imported
inside the code that needs them, so `rtseg --help` and `rtseg echo` start fast.
`rtseg.Segmenter` (the Python API, rtseg.segmenter) is imported on first use.
"""

__version__ = "0.1.0"
__all__ = ["Segmenter", "__version__"]


def __getattr__(name: str):
    if name == "Segmenter":
        from rtseg.segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'rtseg' has no attribute {name!r}")
