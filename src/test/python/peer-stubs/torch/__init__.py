"""A stand-in for torch, just enough for scripts/gpu-peer.py to run end to end on a machine
without PyTorch or a GPU (GpuPeerScriptTest): tensors carry a shape and nothing else, every model
call returns at once, CUDA events say 1 ms. It checks the script's own code (names, arguments,
the JSON it writes), not PyTorch's."""
import contextlib
import math

__version__ = "0.0-stub"
float16 = "float16"
long = "long"


class Tensor:
    def __init__(self, *shape):
        self.shape = tuple(int(s) for s in shape)

    def to(self, *args, **kwargs):
        return self

    def numel(self):
        return math.prod(self.shape)

    def __setitem__(self, key, value):
        pass

    def __getitem__(self, key):
        return self


def is_tensor(x):
    return isinstance(x, Tensor)


def manual_seed(seed):
    pass


def randn(*shape, device=None, dtype=None):
    return Tensor(*shape)


def randint(low, high, shape, device=None):
    return Tensor(*shape)


def ones_like(t):
    return Tensor(*t.shape)


def zeros(*shape, dtype=None):
    return Tensor(*shape)


def tensor(values):
    return Tensor(len(values))


def compile(fn, dynamic=None, **kwargs):
    return fn


@contextlib.contextmanager
def inference_mode():
    yield


class _Event:
    def __init__(self, enable_timing=False):
        pass

    def record(self):
        pass

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return 1.0


class cuda:
    Event = _Event

    @staticmethod
    def get_device_name(i=0):
        return "stub GPU"

    @staticmethod
    def synchronize():
        pass
