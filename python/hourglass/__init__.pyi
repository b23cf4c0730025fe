"""Type stubs of hourglass (the extension is hourglass._hourglass)."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = npt.ArrayLike
Sizes = Union[Sequence[int], str]
Report = Dict[str, float]

class Model:
    """A trained autoencoder on a device."""

    def encode(
        self, x: ArrayLike, *, binary: bool = False, threshold: Optional[float] = None
    ) -> npt.NDArray[Any]:
        """Codes, float32 [N, code] (μ for a VAE); binary=True: packed bits, uint8 [N, ceil(code/8)]."""
    def reconstruct(self, x: ArrayLike) -> npt.NDArray[np.float32]:
        """Reconstructions, float32 [N, D]."""
    def decode(self, codes: ArrayLike) -> npt.NDArray[np.float32]:
        """The decoder's output for codes [N, code], float32 [N, D]."""
    def sample(self, n: int, *, seed: int = 0) -> npt.NDArray[np.float32]:
        """A VAE's decoded draws from its prior N(0, I), float32 [n, D]."""
    def evaluate(self, x: ArrayLike, *, seed: int = 0) -> Dict[str, float]:
        """{"loss": total, term: value, ...} of the training objective on x."""
    def save(self, path: Union[str, PathLike[str]]) -> None:
        """Writes a safetensors checkpoint (PyTorch names)."""
    def state_dict(self) -> Dict[str, npt.NDArray[np.float32]]:
        """The parameters under PyTorch's names (encoder.0.weight is [out, in])."""
    @property
    def history(self) -> List[Report]:
        """The epoch reports of the run (metrics.jsonl lines)."""
    @property
    def spec_dict(self) -> Dict[str, Any]: ...
    @property
    def encoder(self) -> List[int]: ...
    @property
    def decoder(self) -> List[int]: ...
    @property
    def variant(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def normalize(self) -> str: ...

def train(
    x: ArrayLike,
    *,
    val: Optional[ArrayLike] = None,
    callback: Optional[Callable[[Report], Optional[bool]]] = None,
    progress: Optional[bool] = None,
    val_split: Optional[float] = None,
    encoder: Union[str, Sequence[Union[int, str]]] = ...,
    decoder: Optional[Sizes] = None,
    activation: str = "relu",
    code_activation: str = "identity",
    output_activation: str = "sigmoid",
    loss: str = "bce",
    tied: bool = False,
    variant: str = "plain",
    sparsity: float = 0.001,
    sparsity_target: Optional[float] = None,
    noise: str = "mask:0.25",
    contractive: float = 0.1,
    jacobian_projections: Optional[int] = None,
    beta: float = 1.0,
    vae_samples: int = 1,
    prediction: float = 1.0,
    inference_steps: int = 20,
    optimizer: str = "adam",
    lr: float = 0.001,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    warmup: int = 0,
    clip_grad_norm: Optional[float] = None,
    batch_size: int = 64,
    accumulate: int = 1,
    drop_last: bool = False,
    on_nonfinite: str = "stop",
    precision: str = "f32",
    reduce_precision: str = "f32",
    reduce_buckets: str = "1024",
    steps: Optional[int] = None,
    epochs: Optional[int] = None,
    early_stop: Optional[int] = None,
    no_shuffle: bool = False,
    seed: int = 0,
    device: str = "auto",
    init: Optional[Union[str, PathLike[str]]] = None,
    log_every: Optional[int] = None,
    normalize: Optional[str] = None,
    allow_nonfinite: bool = False,
) -> Model: ...
def load(path: Union[str, PathLike[str]], *, device: str = "auto") -> Model: ...
def devices() -> List[Dict[str, Any]]: ...
def train_defaults() -> Dict[str, Any]: ...
